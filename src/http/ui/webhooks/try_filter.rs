//! "Try it" in the wizard's Filters step: the filter as it stands, tried on the tenant's latest
//! events without saving anything.

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::super::{field, page, FormPost};
use super::problems::human;
use crate::http::api::error::ApiError;
use crate::service::webhooks as webhook_ops;
use crate::service::AppState;

/// "Try it": the filter fields as they stand, tried on the tenant's latest 20 events (nothing is
/// saved). Answers a page whose `#filter-try-result` the wizard shows in place.
pub async fn try_filter(State(state): State<AppState>, post: FormPost) -> Response {
    let (min, filter) =
        (field(&post.form, "min_severity").unwrap_or_default(), field(&post.form, "filter").unwrap_or_default());
    let result = webhook_ops::try_filter(&state, &post.session.who, min, filter, 20).await.map_err(ApiError::from);
    page(
        "Try the filter",
        &post.session,
        html! {
            div #filter-try-result {
                @match &result {
                    Err(e) => {
                        @for p in e.problems() { p.error role="alert" { (human(&p.field, &p.message)) } }
                        @if e.problems().is_empty() { p.error role="alert" { (e.message) } }
                    }
                    Ok(trials) if trials.is_empty() => p.muted { "No events yet to try it on." },
                    Ok(trials) => {
                        p { strong { (trials.iter().filter(|t| t.passes).count()) " of the last " (trials.len()) " events pass" } }
                        div.table-wrap { table {
                            thead { tr { th { "Event" } th { "event_ref" } th { "Severity" } th { "Delivered?" } } }
                            tbody {
                                @for t in trials {
                                    tr {
                                        td { code { (t.event_type) } }
                                        td { (t.event_ref) }
                                        td { (t.severity) }
                                        td { @if t.passes { span.badge.ok { "passes" } } @else { span.badge.neutral { "filtered out" } } }
                                    }
                                }
                            }
                        } }
                    }
                }
            }
        },
    )
}
