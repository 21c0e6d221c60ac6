//! Builds a log of a given size for the CLI benchmarks (`benches/cli.sh`):
//! `cargo run --release --example mklog -- DIR BYTES PAYLOAD_BYTES`.
//! Payloads are printable text, so exports carry them as UTF-8.

use walctl::{Log, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, bytes, payload] = &args[..] else {
        return Err("usage: mklog DIR BYTES PAYLOAD_BYTES".into());
    };
    let (bytes, payload): (u64, usize) = (bytes.parse()?, payload.parse()?);
    let log = Log::open(
        dir,
        Options {
            write_buffer: 4 << 20,
            ..Options::default()
        },
    )?;
    let line: Vec<u8> = (0..payload).map(|i| b'a' + (i % 26) as u8).collect();
    let count = bytes / (payload as u64 + walctl::format::RECORD_HEADER_SIZE as u64);
    for _ in 0..count {
        log.append(&line)?;
    }
    log.sync()?;
    println!("{count} records");
    Ok(())
}
