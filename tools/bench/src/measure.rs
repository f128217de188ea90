//! What a run measures besides throughput: CPU, memory, the machine's share.

use super::*;

/// CPU seconds (user + system) and peak RSS in KiB of a process, from /proc.
pub(crate) fn proc_usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu, hwm)
}

/// CPU seconds per 1000 deliveries, to three decimals.
pub(crate) fn per_1000(cpu_seconds: f64, deliveries: u64) -> f64 {
    (cpu_seconds / deliveries.max(1) as f64 * 1000.0 * 1000.0).round() / 1000.0
}

/// CPU seconds of the processes beside the server that share its machine: the sink, and this
/// process (the publishers, the raw ceiling's client, the polling). With the server's own, they
/// account for the machine's time per delivery.
pub(crate) struct OthersCpu {
    pub(crate) sink: f64,
    pub(crate) load_test: f64,
}

impl OthersCpu {
    pub(crate) fn now(sink_pid: u32) -> Self {
        Self { sink: proc_usage(sink_pid).0, load_test: proc_usage(std::process::id()).0 }
    }

    pub(crate) fn since(&self, before: &Self) -> Self {
        Self { sink: self.sink - before.sink, load_test: self.load_test - before.load_test }
    }
}

/// The machine's CPU time from /proc/stat, in ticks: (all, idle + iowait, steal). Steal is
/// time the hypervisor gave this VM's CPUs to someone else: on a shared machine it explains
/// runs that differ by a fifth with nothing changed.
pub(crate) fn machine_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    (fields.iter().take(8).sum(), at(3) + at(4), at(7))
}

/// How the machine's CPUs were spent between two [`machine_ticks`] readings, in percent.
pub(crate) fn machine_share(before: (u64, u64, u64), after: (u64, u64, u64)) -> Value {
    let all = after.0.saturating_sub(before.0).max(1) as f64;
    let pct = |t: u64| (t as f64 / all * 1000.0).round() / 10.0;
    let (idle, steal) = (after.1.saturating_sub(before.1), after.2.saturating_sub(before.2));
    json!({"idle_percent": pct(idle), "steal_percent": pct(steal)})
}

/// CPU seconds of every PostgreSQL process on this machine (its backends, writer, WAL writer…):
/// what the database spent, when the load test's database is the only one busy.
pub(crate) fn postgres_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .map(|pid| proc_usage(pid).0)
        .sum()
}

pub(crate) fn current_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
