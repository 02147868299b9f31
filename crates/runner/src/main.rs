//! `cryowarden-runner`: one JSON request on stdin, one JSON answer on stdout (see the library).

use std::io::{Read, Write};
use std::process::ExitCode;

use cryowarden_runner::protocol::MAX_REQUEST_BYTES;
use cryowarden_runner::{Env, run};

fn main() -> ExitCode {
    let mut input = Vec::new();
    // One byte over the limit, so that an over-long request is seen as such.
    let read = std::io::stdin()
        .lock()
        .take(MAX_REQUEST_BYTES + 1)
        .read_to_end(&mut input)
        .map(|_| input);
    let (answer, status) = run(read, &Env::from_process());
    let mut out = serde_json::to_vec(&answer).expect("an answer always encodes");
    out.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    ExitCode::from(status)
}
