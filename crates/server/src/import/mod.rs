//! Import jobs (issue 5): the headers of the movies and micrographs a job names, read through
//! the runner as the lab's Unix account (DESIGN.md invariant 2: the server never opens lab data).
//!
//! [`read_headers`] reads thousands of files in a few runner spawns: one `read_heads` request per
//! [`CHUNK_FILES`] files (the first [`HEAD_BYTES`] of each; [`CONCURRENT_REQUESTS`] requests at a
//! time), parsed here; then, for the TIFF and EER files among them, one `walk_chains` request per
//! chunk, in which the runner follows each file's IFD chain (laid out as [`headers::tiff_chain`]
//! describes) and returns the number of IFDs and the first one. bzip2-compressed MRCs
//! (`.mrc.bz2`) go in `read_heads` requests of their own, which the runner answers with the first
//! bytes of each file's decompressed content. A file that cannot be read or
//! parsed gets its own [`HeaderError`]; it never stops the others.

pub mod fixtures;
pub mod headers;

use std::ops::Range;
use std::path::Path;

use futures_util::StreamExt;

pub use headers::{FileFormat, HEAD_BYTES, Header, HeaderError, MAX_FRAMES};

use crate::runner::{Account, Chain, ChainSpec, Decompress, MAX_BATCH_FILES, Runner, RunnerError};

/// Most files of one runner request.
pub const CHUNK_FILES: usize = MAX_BATCH_FILES;
/// `read_heads` requests (runner processes) of one import at a time.
pub const CONCURRENT_REQUESTS: usize = 2;
/// Bytes of the JSON of one request's files, well under the runner's 1 MiB request limit.
const CHUNK_REQUEST_BYTES: usize = 768 << 10;
/// JSON bytes of a chain beside its path in a `walk_chains` request.
const CHAIN_JSON_BYTES: usize = 140;

/// The header of each file (paths relative to `root`, one of the lab's data roots), in order,
/// read as `account`. A path with no known extension is not read at all.
pub async fn read_headers(
    runner: &Runner,
    account: &Account,
    root: &Path,
    paths: &[String],
) -> Vec<(String, Result<Header, HeaderError>)> {
    let mut results: Vec<Option<Result<Header, HeaderError>>> = vec![None; paths.len()];
    // Plain files, and compressed ones (read in requests of their own, through the runner's
    // decoder).
    let (mut plain, mut compressed) = (Vec::with_capacity(paths.len()), Vec::new());
    for (i, path) in paths.iter().enumerate() {
        match headers::format_of(path) {
            Ok((format, None)) => plain.push((i, format)),
            Ok((format, Some(how))) => compressed.push((i, format, how)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let batches = batches(paths, &plain, &compressed);

    // Step 1: every head; MRCs are done, TIFFs give the layout of their IFD chain. Requests run
    // [`CONCURRENT_REQUESTS`] at a time, each in its own task (so that a runner's answer is read
    // while another is parsed).
    let mut tiffs = Vec::new();
    let requests = batches.into_iter().map(|(batch, how)| {
        let (runner, account, root) = (runner.clone(), account.clone(), root.to_path_buf());
        AbortOnDrop(tokio::spawn(async move {
            read_batch(&runner, &account, &root, batch, how).await
        }))
    });
    let mut answers = futures_util::stream::iter(requests).buffered(CONCURRENT_REQUESTS);
    while let Some(answer) = answers.next().await {
        let outcomes = answer.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        for (i, outcome) in outcomes {
            match outcome {
                Outcome::Done(result) => results[i] = Some(result),
                Outcome::Tiff(tiff) => tiffs.push(tiff),
            }
        }
    }

    // Step 2: the TIFFs' IFD chains. The runner always walks the first chain of a request, and
    // answers `answer-full` for those that would overfill its answer: they are asked again.
    let mut pending: Vec<Tiff> = tiffs;
    while !pending.is_empty() {
        let range = chunks(&pending, |t| json_len(&paths[t.index]) + CHAIN_JSON_BYTES)
            .next()
            .unwrap_or(0..0);
        let rest = pending.split_off(range.end);
        let batch = std::mem::replace(&mut pending, rest);
        let chains: Vec<Chain> = batch
            .iter()
            .map(|t| Chain {
                path: paths[t.index].clone(),
                spec: t.spec.clone(),
            })
            .collect();
        let walks = match runner.walk_chains(account, root, chains, MAX_FRAMES).await {
            Ok(walks) if walks.len() == batch.len() => walks,
            answer => {
                let e = match answer {
                    Err(e) => batch_error(&e),
                    Ok(walks) => batch_error(&RunnerError::Unavailable(format!(
                        "walk_chains answered {} files for {}",
                        walks.len(),
                        batch.len()
                    ))),
                };
                batch
                    .iter()
                    .for_each(|t| results[t.index] = Some(Err(e.clone())));
                continue;
            }
        };
        let mut again = Vec::new();
        for (tiff, walk) in batch.into_iter().zip(walks) {
            let result = match walk.walked() {
                Ok(walked) => headers::parse_tiff(tiff.format, &tiff.head, &tiff.spec, &walked),
                Err(refusal) if refusal.code == "answer-full" => {
                    again.push(tiff);
                    continue;
                }
                Err(refusal) => Err(HeaderError::from_chain_refusal(refusal)),
            };
            results[tiff.index] = Some(result);
        }
        again.append(&mut pending);
        pending = again;
    }

    paths
        .iter()
        .zip(results)
        .map(|(path, result)| {
            let result = result.unwrap_or_else(|| {
                Err(HeaderError::Runner {
                    code: "internal".into(),
                    message: "the file was not read".into(),
                })
            });
            (path.clone(), result)
        })
        .collect()
}

/// The `read_heads` requests of step 1: (index, format, path) of each file, and the compression
/// all of them come in (compressed files are asked for in requests of their own).
type Batch = (Vec<(usize, FileFormat, String)>, Option<Decompress>);

fn batches(
    paths: &[String],
    plain: &[(usize, FileFormat)],
    compressed: &[(usize, FileFormat, Decompress)],
) -> Vec<Batch> {
    let mut out = Vec::new();
    for range in chunks(plain, |(i, _)| json_len(&paths[*i]) + 3) {
        out.push((
            plain[range]
                .iter()
                .map(|&(i, format)| (i, format, paths[i].clone()))
                .collect(),
            None,
        ));
    }
    for same in compressed.chunk_by(|a, b| a.2 == b.2) {
        for range in chunks(same, |(i, ..)| json_len(&paths[*i]) + 3) {
            let how = same[range.start].2;
            out.push((
                same[range]
                    .iter()
                    .map(|&(i, format, _)| (i, format, paths[i].clone()))
                    .collect(),
                Some(how),
            ));
        }
    }
    out
}

/// A spawned request, cancelled (its runner killed) when the import is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// What the heads tell of a file: its header (or error), or that it is a TIFF to walk.
enum Outcome {
    Done(Result<Header, HeaderError>),
    Tiff(Tiff),
}

/// One `read_heads` request for `batch` (index, format, path), all compressed as `how` says,
/// and what each head tells.
async fn read_batch(
    runner: &Runner,
    account: &Account,
    root: &Path,
    batch: Vec<(usize, FileFormat, String)>,
    how: Option<Decompress>,
) -> Vec<(usize, Outcome)> {
    let names: Vec<String> = batch.iter().map(|(_, _, path)| path.clone()).collect();
    let heads = match runner
        .read_heads(account, root, &names, HEAD_BYTES, how)
        .await
    {
        Ok(heads) if heads.len() == batch.len() => heads,
        answer => {
            let e = match answer {
                Err(e) => batch_error(&e),
                Ok(heads) => batch_error(&RunnerError::Unavailable(format!(
                    "read_heads answered {} files for {}",
                    heads.len(),
                    batch.len()
                ))),
            };
            return batch
                .into_iter()
                .map(|(i, _, _)| (i, Outcome::Done(Err(e.clone()))))
                .collect();
        }
    };
    batch
        .into_iter()
        .zip(heads)
        .map(|((index, format, _), head)| {
            let outcome = match head.read() {
                Err(refusal) => Outcome::Done(Err(HeaderError::Unreadable {
                    code: refusal.code,
                    message: refusal.message,
                })),
                // Only MRCs come compressed (`headers::format_of`).
                Ok((_, bytes)) if how.is_some() => {
                    Outcome::Done(headers::parse_compressed_mrc(format, &bytes))
                }
                Ok((size, bytes)) if !format.is_tiff() => {
                    Outcome::Done(headers::parse_mrc(format, &bytes, size))
                }
                Ok((size, bytes)) => match headers::tiff_chain(&bytes, size) {
                    Ok(spec) => Outcome::Tiff(Tiff {
                        index,
                        format,
                        spec,
                        head: bytes,
                    }),
                    Err(e) => Outcome::Done(Err(e)),
                },
            };
            (index, outcome)
        })
        .collect()
}

/// A TIFF or EER file whose IFD chain is still to be walked.
struct Tiff {
    index: usize,
    format: FileFormat,
    spec: ChainSpec,
    head: Vec<u8>,
}

/// The error every file of a failed request gets.
fn batch_error(e: &RunnerError) -> HeaderError {
    match e {
        RunnerError::Refused { code, message } => HeaderError::Runner {
            code: code.clone(),
            message: message.clone(),
        },
        RunnerError::Unavailable(_) => {
            tracing::warn!("import: {e}");
            HeaderError::Runner {
                code: "runner-unavailable".into(),
                message: "the file could not be read because the runner is unavailable: see the server's log".into(),
            }
        }
    }
}

/// Bytes of `text` as a JSON string, about (quotes, escapes of `"`, `\` and control characters).
fn json_len(text: &str) -> usize {
    text.len()
        + 3
        + text
            .bytes()
            .filter(|b| *b < 0x20 || *b == b'"' || *b == b'\\')
            .count()
            * 5
}

/// Consecutive ranges of `items` of at most [`CHUNK_FILES`] items and [`CHUNK_REQUEST_BYTES`]
/// bytes as `cost` counts them (a single item over the budget is a chunk of its own).
fn chunks<'a, T>(
    items: &'a [T],
    cost: impl Fn(&T) -> usize + 'a,
) -> impl Iterator<Item = Range<usize>> + 'a {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= items.len() {
            return None;
        }
        let (mut end, mut bytes) = (start, 0);
        while end < items.len() && end - start < CHUNK_FILES {
            let c = cost(&items[end]);
            if end > start && bytes + c > CHUNK_REQUEST_BYTES {
                break;
            }
            bytes += c;
            end += 1;
        }
        let range = start..end;
        start = end;
        Some(range)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_count_and_bytes() {
        let small = vec![10usize; 12_000];
        let ranges: Vec<_> = chunks(&small, |c| *c).collect();
        assert_eq!(ranges, [0..5000, 5000..10_000, 10_000..12_000]);
        let big = vec![300_000usize; 4];
        let ranges: Vec<_> = chunks(&big, |c| *c).collect();
        assert_eq!(ranges, [0..2, 2..4]);
        let huge = vec![2_000_000usize; 2];
        assert_eq!(chunks(&huge, |c| *c).collect::<Vec<_>>(), [0..1, 1..2]);
        assert_eq!(chunks(&Vec::<usize>::new(), |c| *c).count(), 0);
        assert_eq!(json_len("a\"b"), 3 + 3 + 5);
    }
}
