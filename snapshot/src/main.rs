//! `tern-snapshot`: the command line over the `snapshot` library (usage in README.md).

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use snapshot::format::{Snapshot, SnapshotSummary};
use snapshot::key_file::read_key_file;
use snapshot::link::EndpointBinding;
use snapshot::receive::{ReceiveOptions, receive_one};
use snapshot::send::send_snapshot;

const USAGE: &str = "usage:
  tern-snapshot receive --listen ADDR:PORT --key-file KEYFILE -o FILE [--max-memory MIB]
                        [--max-disk MIB]
      wait for one migration from a tern host and save the VM (and its disks) to FILE;
      both limits default to 4096 MiB (the receiver holds the VM in its memory)
  tern-snapshot send FILE HOST:PORT --key-file KEYFILE
      restore the VM in FILE on the tern host listening at HOST:PORT
  tern-snapshot info FILE
      verify FILE and print what it holds";

/// A command-line mistake: printed with the usage, exit code 2.
struct Usage(String);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(message)) => {
            eprintln!("tern-snapshot: {message}");
            ExitCode::FAILURE
        }
        Err(Usage(message)) => {
            eprintln!("tern-snapshot: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Options after the subcommand: `--name value` pairs and positional words.
struct Options {
    positional: Vec<String>,
    named: Vec<(String, String)>,
}

impl Options {
    fn parse(args: &[String], known: &[&str]) -> Result<Options, Usage> {
        let mut options = Options {
            positional: Vec::new(),
            named: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg.starts_with('-') && arg.len() > 1 {
                if !known.contains(&arg.as_str()) {
                    return Err(Usage(format!("unknown option {arg}")));
                }
                let value = it
                    .next()
                    .ok_or_else(|| Usage(format!("{arg} needs a value")))?;
                options.named.push((arg.clone(), value.clone()));
            } else {
                options.positional.push(arg.clone());
            }
        }
        Ok(options)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.named
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &str) -> Result<&str, Usage> {
        self.get(name)
            .ok_or_else(|| Usage(format!("{name} is required")))
    }
}

/// A size option in MiB (default 4096), at most 1 TiB.
fn mebibytes(o: &Options, name: &str) -> Result<u64, Usage> {
    match o.get(name) {
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|mib| *mib <= 1 << 20)
            .ok_or_else(|| {
                Usage(format!(
                    "{name} '{text}' is not a number of MiB (at most 1048576)"
                ))
            }),
        None => Ok(4096),
    }
}

fn address(text: &str) -> Result<SocketAddr, Usage> {
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| Usage(format!("'{text}' is not HOST:PORT")))
}

/// `--testing-relay endpoints`: the system tests' gateway reports the far connection's
/// endpoints in-band (`link::EndpointBinding::FromRelay`). Not for operators.
fn binding(o: &Options) -> Result<EndpointBinding, Usage> {
    match o.get("--testing-relay") {
        None => Ok(EndpointBinding::Socket),
        Some("endpoints") => Ok(EndpointBinding::FromRelay),
        Some(other) => Err(Usage(format!(
            "--testing-relay '{other}': only 'endpoints'"
        ))),
    }
}

fn run(args: &[String]) -> Result<Result<(), String>, Usage> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Usage(String::from("no command")));
    };
    let mut say = |line: &str| println!("{line}");
    match command.as_str() {
        "receive" => {
            let o = Options::parse(
                rest,
                &[
                    "--listen",
                    "--key-file",
                    "-o",
                    "--max-memory",
                    "--max-disk",
                    "--testing-relay",
                ],
            )?;
            if !o.positional.is_empty() {
                return Err(Usage(format!("unexpected '{}'", o.positional[0])));
            }
            let listen = address(o.require("--listen")?)?;
            let output = PathBuf::from(o.require("-o")?);
            let max_mib = mebibytes(&o, "--max-memory")?;
            let max_disk_mib = mebibytes(&o, "--max-disk")?;
            let key = match read_key_file(Path::new(o.require("--key-file")?)) {
                Ok(key) => key,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let listener = match TcpListener::bind(listen) {
                Ok(l) => l,
                Err(e) => return Ok(Err(format!("cannot listen on {listen}: {e}"))),
            };
            say(&format!("receive: listening on {listen}"));
            let options = ReceiveOptions {
                key,
                output,
                max_memory_bytes: max_mib << 20,
                max_disk_bytes: max_disk_mib << 20,
                binding: binding(&o)?,
            };
            Ok(receive_one(&listener, &options, &mut say)
                .map(|_| ())
                .map_err(|e| e.to_string()))
        }
        "send" => {
            let o = Options::parse(rest, &["--key-file", "--testing-relay"])?;
            let [file, to] = o.positional.as_slice() else {
                return Err(Usage(String::from("send needs FILE and HOST:PORT")));
            };
            let to = address(to)?;
            let key = match read_key_file(Path::new(o.require("--key-file")?)) {
                Ok(key) => key,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let snapshot = match Snapshot::read_file(Path::new(file)) {
                Ok(s) => s,
                Err(e) => return Ok(Err(format!("{file}: {e}"))),
            };
            say(&format!(
                "send: {file} verified: VM '{}', {} MiB",
                snapshot.identity.name,
                snapshot.identity.memory_bytes >> 20
            ));
            Ok(send_snapshot(&snapshot, to, &key, binding(&o)?, &mut say)
                .map_err(|e| e.to_string()))
        }
        "info" => {
            let [file] = rest else {
                return Err(Usage(String::from("info needs exactly one FILE")));
            };
            Ok(match SnapshotSummary::read_file(Path::new(file)) {
                Ok(summary) => {
                    print!("{}", summary);
                    Ok(())
                }
                Err(e) => Err(format!("{file}: {e}")),
            })
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(Ok(()))
        }
        other => Err(Usage(format!("unknown command '{other}'"))),
    }
}
