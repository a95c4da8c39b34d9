//! Timeouts that arm their timer only when they have to. Most reads on the call path are
//! ready at once (a request or reply body that came with its head): polling the future
//! once first spares those the timer's registration and removal in the runtime's wheel,
//! each a lock and a few clock reads, several times per call.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

/// The deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

/// `fut`'s output, or [`TimedOut`] after `within` (counted from its first wait).
pub async fn within<F: Future>(within: Duration, fut: F) -> Result<F::Output, TimedOut> {
    let mut fut = pin!(fut);
    if let Some(out) = poll_once(fut.as_mut()).await {
        return Ok(out);
    }
    tokio::time::timeout(within, fut)
        .await
        .map_err(|_| TimedOut)
}

/// Polls `fut` once (registering the task's waker, as any poll does).
async fn poll_once<F: Future>(mut fut: std::pin::Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ready_future_needs_no_timer_and_a_slow_one_times_out() {
        assert_eq!(within(Duration::ZERO, async { 7 }).await, Ok(7));
        let slow = tokio::time::sleep(Duration::from_secs(10));
        assert_eq!(within(Duration::from_millis(20), slow).await, Err(TimedOut));
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = tx.send(3);
        });
        assert_eq!(within(Duration::from_secs(30), rx).await, Ok(Ok(3)));
    }
}
