//! Per-query bounds of the Flight SQL endpoint: rows, bytes, wall time and
//! how many queries run at once. A query past a bound fails with a status
//! that names the bound (partial results already sent are followed by the
//! error, so a client never mistakes a cut result for a whole one).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{bail, Result};
use arrow_flight::error::FlightError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// The bounds, with their defaults (`dajia serve --help`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Rows one result may have.
    pub max_rows: u64,
    /// In-memory bytes of one result's batches.
    pub max_bytes: u64,
    /// Wall time of one query, planning to last batch.
    pub timeout: Duration,
    /// Queries running at once; more are refused until one ends.
    pub max_concurrent: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rows: 10_000_000,
            max_bytes: 2 << 30,
            timeout: Duration::from_secs(600),
            max_concurrent: 8,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<()> {
        if self.max_rows == 0 || self.max_bytes == 0 || self.max_concurrent == 0 {
            bail!("--max-rows, --max-result-bytes and --max-concurrent-queries must be at least 1");
        }
        if self.timeout.is_zero() {
            bail!("--query-timeout must be at least one second");
        }
        Ok(())
    }

    /// A permit for one more query, or why there is none.
    pub fn admit(&self, running: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, Status> {
        running.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} queries are running (--max-concurrent-queries); try again when one ends",
                self.max_concurrent
            ))
        })
    }

    /// Why a query past its deadline is stopped.
    pub fn timed_out(&self) -> Status {
        Status::deadline_exceeded(format!(
            "the query ran longer than {} s (--query-timeout); narrow it or aggregate",
            self.timeout.as_secs()
        ))
    }
}

/// A query's batches, stopped with an error at the first bound crossed.
/// Holds the query's concurrency permit until dropped (the client read the
/// last batch, failed or went away: tonic drops the stream, which cancels
/// the query).
pub struct Bounded {
    inner: SendableRecordBatchStream,
    limits: Limits,
    rows: u64,
    bytes: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

impl Bounded {
    pub fn new(
        inner: SendableRecordBatchStream,
        limits: Limits,
        deadline: tokio::time::Instant,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            inner,
            limits,
            rows: 0,
            bytes: 0,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            done: false,
            _permit: permit,
        }
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<RecordBatch, FlightError>>> {
        self.done = true;
        Poll::Ready(Some(Err(FlightError::Tonic(Box::new(status)))))
    }
}

impl Stream for Bounded {
    type Item = Result<RecordBatch, FlightError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let s = self.limits.timed_out();
            return self.fail(s);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let s = super::service::df_status(e);
                self.fail(s)
            }
            Poll::Ready(Some(Ok(batch))) => {
                self.rows += batch.num_rows() as u64;
                self.bytes += batch.get_array_memory_size() as u64;
                if self.rows > self.limits.max_rows {
                    let s = Status::resource_exhausted(format!(
                        "the result has more than {} rows (--max-rows); add a LIMIT or aggregate",
                        self.limits.max_rows
                    ));
                    return self.fail(s);
                }
                if self.bytes > self.limits.max_bytes {
                    let s = Status::resource_exhausted(format!(
                        "the result is larger than {} bytes (--max-result-bytes); select fewer columns or rows",
                        self.limits.max_bytes
                    ));
                    return self.fail(s);
                }
                Poll::Ready(Some(Ok(batch)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::StreamExt;

    fn batches(n: usize, rows: usize, pause: Duration) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let s = schema.clone();
        let stream = futures::stream::iter(0..n).then(move |i| {
            let s = s.clone();
            async move {
                tokio::time::sleep(pause).await;
                let col = Int64Array::from_iter_values((0..rows as i64).map(|r| r + i as i64));
                Ok(RecordBatch::try_new(s, vec![Arc::new(col)]).unwrap())
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }

    async fn drain(limits: Limits, input: SendableRecordBatchStream) -> (u64, Option<Status>) {
        let running = Arc::new(Semaphore::new(1));
        let permit = limits.admit(&running).unwrap();
        // The permit is held while the stream lives.
        assert!(limits.admit(&running).is_err());
        let deadline = tokio::time::Instant::now() + limits.timeout;
        let mut s = Bounded::new(input, limits.clone(), deadline, permit);
        let mut rows = 0;
        let mut err = None;
        while let Some(b) = s.next().await {
            match b {
                Ok(b) => rows += b.num_rows() as u64,
                Err(e) => err = Some(Status::from(e)),
            }
        }
        drop(s);
        assert!(
            limits.admit(&running).is_ok(),
            "the permit outlived the query"
        );
        (rows, err)
    }

    #[tokio::test]
    async fn each_bound_stops_the_query_with_its_name() {
        let base = Limits {
            max_rows: 1000,
            max_bytes: 1 << 30,
            timeout: Duration::from_secs(30),
            max_concurrent: 1,
        };
        let (rows, err) = drain(base.clone(), batches(4, 250, Duration::ZERO)).await;
        assert_eq!((rows, err.map(|e| e.code())), (1000, None));

        let (rows, err) = drain(base.clone(), batches(5, 250, Duration::ZERO)).await;
        let err = err.expect("over --max-rows");
        assert_eq!(rows, 1000);
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("--max-rows"), "{}", err.message());

        let small = Limits {
            max_bytes: 3000,
            ..base.clone()
        };
        let (_, err) = drain(small, batches(5, 250, Duration::ZERO)).await;
        assert!(err.unwrap().message().contains("--max-result-bytes"));

        let slow = Limits {
            timeout: Duration::from_millis(200),
            ..base
        };
        let (rows, err) = drain(slow, batches(100, 1, Duration::from_millis(50))).await;
        let err = err.expect("over --query-timeout");
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
        assert!(rows < 10, "{rows}");
    }

    #[test]
    fn zero_bounds_are_refused() {
        assert!(Limits::default().validate().is_ok());
        for l in [
            Limits {
                max_rows: 0,
                ..Default::default()
            },
            Limits {
                max_concurrent: 0,
                ..Default::default()
            },
            Limits {
                timeout: Duration::ZERO,
                ..Default::default()
            },
        ] {
            assert!(l.validate().is_err());
        }
    }
}
