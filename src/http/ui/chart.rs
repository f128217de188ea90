//! A small inline SVG of the last 24 hours: deliveries per hour (succeeded and failed, stacked)
//! and the mean response time as a line. Rendered on the server; no script, no library. Its
//! words (scale, time axis) are HTML beside it ([`caption`]), so they stay readable when the
//! drawing shrinks to a phone's width.

/// `buckets`: (hour start ms, attempts, successes, mean response ms).
pub fn svg(buckets: &[(i64, u64, u64, i64)], since: i64) -> String {
    const W: f64 = 720.0;
    const H: f64 = 160.0;
    const PAD: f64 = 24.0;
    let hours = 24usize;
    let hour = 3_600_000i64;
    let start = since - since.rem_euclid(hour);
    let mut slots = vec![(0u64, 0u64, 0i64); hours + 1];
    for (t, n, ok, ms) in buckets {
        let i = ((t - start) / hour) as usize;
        if i < slots.len() {
            slots[i] = (*n, *ok, *ms);
        }
    }
    let max_n = slots.iter().map(|s| s.0).max().unwrap_or(0).max(1) as f64;
    let max_ms = slots.iter().map(|s| s.2).max().unwrap_or(0).max(1) as f64;
    let bw = (W - 2.0 * PAD) / slots.len() as f64;
    let mut out = format!(
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"Deliveries per hour and mean response time over the last 24 hours\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    out.push_str(&format!(
        "<line x1=\"{PAD}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"currentColor\" stroke-opacity=\"0.25\"/>",
        y = H - PAD,
        x2 = W - PAD
    ));
    let mut points = Vec::new();
    for (i, (n, ok, ms)) in slots.iter().enumerate() {
        let x = PAD + i as f64 * bw;
        let h_all = (*n as f64 / max_n) * (H - 2.0 * PAD);
        let h_ok = (*ok as f64 / max_n) * (H - 2.0 * PAD);
        if *n > 0 {
            out.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#D64545\"><title>{} failed</title></rect>",
                H - PAD - h_all,
                bw * 0.8,
                h_all - h_ok,
                n - ok
            ));
            out.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h_ok:.1}\" fill=\"#2EA05F\"><title>{ok} delivered, mean {ms} ms</title></rect>",
                H - PAD - h_ok,
                bw * 0.8
            ));
            points.push(format!("{:.1},{:.1}", x + bw * 0.4, H - PAD - (*ms as f64 / max_ms) * (H - 2.0 * PAD)));
        }
    }
    if points.len() > 1 {
        out.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#5B7BFF\" stroke-width=\"2\"/>",
            points.join(" ")
        ));
    }
    out.push_str("</svg>");
    out
}

/// What the chart shows, in words: its scale, or that there is nothing to show.
pub fn caption(buckets: &[(i64, u64, u64, i64)]) -> String {
    let max_n = buckets.iter().map(|b| b.1).max().unwrap_or(0);
    let max_ms = buckets.iter().map(|b| b.3).max().unwrap_or(0);
    if max_n == 0 {
        return "No calls in the last 24 hours.".into();
    }
    format!("Calls per hour over the last 24 hours (up to {}); mean response up to {max_ms} ms.", plural(max_n, "call"))
}

/// "1 call", "2 calls" (`many`: the plural when it is not `one` + "s").
pub fn plural(n: u64, one: &str) -> String {
    plural_of(n, one, &format!("{one}s"))
}

pub fn plural_of(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}
