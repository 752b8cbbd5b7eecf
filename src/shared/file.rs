//! Reading the small files a signer takes as input: key files, passphrase files, public keys,
//! messages.
//!
//! Every file input of the crate and of the command-line tool goes through [`SmallFile`], so
//! each one has the same guarantees:
//! - **bounded in size**: at most [`SmallFile::max_bytes`] bytes are read (64 KiB unless set),
//!   whatever the file claims; `/dev/zero` or a huge file costs nothing;
//! - **bounded in time**: the file is opened without blocking (`O_NONBLOCK`), so a FIFO that no
//!   process writes to cannot hang the process: a pipe or FIFO whose writer is slow, or has not
//!   opened it yet, is waited for at most [`SmallFile::wait`] (10 s unless set), and one whose
//!   writers closed without writing fails at once;
//! - **files and pipes only**: directories and devices are refused before anything is read;
//!   a pipe with a writer, as in `--passphrase-file <(pass show key)`, works;
//! - **wiped**: the bytes are held in a [`Zeroizing`] buffer that never reallocates in place, so
//!   no copy of a key or passphrase is freed without being wiped.
//!
//! Error texts name the file (control characters escaped) and the reason in plain words.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result, printable_path};

/// The default size bound: no key, passphrase or public key file is this large.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

/// The default time a pipe's writer is waited for.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// What a wait on a pipe found.
#[derive(Debug, PartialEq, Eq)]
enum Ready {
    /// Data, or a reason to try reading again.
    Data,
    /// Every writer closed: what is left to read is all there will be.
    HungUp,
}

/// What the first read allocates for a pipe (regular files get their own size).
const PIPE_FIRST_CAPACITY: usize = 4096;

/// How to read one small input file; see the [module docs](self).
///
/// ```no_run
/// # fn main() -> remote_signer::Result<()> {
/// use remote_signer::file::SmallFile;
/// let passphrase = SmallFile::new("passphrase file").max_bytes(1024).read("pass.txt")?;
/// # let _ = passphrase.bytes();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SmallFile {
    what: &'static str,
    kind: ErrorKind,
    max_bytes: usize,
    wait: Duration,
}

/// The content of a file read by [`SmallFile::read`], in a buffer wiped on drop.
pub struct FileBytes {
    bytes: Zeroizing<Vec<u8>>,
    mode: Option<u32>,
}

impl std::fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBytes")
            .field("len", &self.bytes.len())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl FileBytes {
    /// The file's content.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The content, still in its wiped-on-drop buffer.
    pub fn into_bytes(self) -> Zeroizing<Vec<u8>> {
        self.bytes
    }

    /// The file's permission bits (`0o7777` part of the mode), where the platform has them.
    pub fn mode(&self) -> Option<u32> {
        self.mode
    }
}

impl SmallFile {
    /// A reader for a file that error texts call `what` ("key file", "public key file", ...),
    /// with the default bounds.
    pub fn new(what: &'static str) -> Self {
        SmallFile {
            what,
            kind: ErrorKind::Io,
            max_bytes: DEFAULT_MAX_BYTES,
            wait: DEFAULT_WAIT,
        }
    }

    /// The most bytes accepted (default [`DEFAULT_MAX_BYTES`]); a longer file is refused.
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// How long a pipe's writer may take in all (default [`DEFAULT_WAIT`]).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The error kind reported (default [`ErrorKind::Io`]).
    pub(crate) fn kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    fn error(&self, path: &Path, reason: impl std::fmt::Display) -> Error {
        Error::sentence(
            self.kind,
            format!(
                "cannot read {} {}: {reason}",
                self.what,
                printable_path(path)
            ),
        )
    }

    /// Reads the whole file.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] (unless the caller chose another kind), naming the file and why: it
    /// does not exist, may not be read, is a directory or a device, is larger than the bound,
    /// is empty, or a pipe's writer sent nothing in time ([`ErrorKind::Timeout`] then).
    pub fn read(&self, path: impl AsRef<Path>) -> Result<FileBytes> {
        let path = path.as_ref();
        // Refuse directories and devices before opening them: opening a device can have side
        // effects (a tape rewinds, a terminal becomes the controlling one).
        let before = std::fs::metadata(path).map_err(|e| self.error(path, io_reason(&e)))?;
        self.check_type(path, &before.file_type())?;
        let mut file = open_nonblocking(path).map_err(|e| self.error(path, io_reason(&e)))?;
        let meta = file
            .metadata()
            .map_err(|e| self.error(path, io_reason(&e)))?;
        // The path may have been swapped between the two looks.
        self.check_type(path, &meta.file_type())?;
        let too_large = || self.error(path, format!("larger than {} bytes", self.max_bytes));
        let capacity = if meta.is_file() {
            if meta.len() > self.max_bytes as u64 {
                return Err(too_large());
            }
            meta.len() as usize + 1
        } else {
            PIPE_FIRST_CAPACITY.min(self.max_bytes + 1)
        };
        let deadline = Instant::now() + self.wait;
        let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
        let mut hung_up = false;
        loop {
            if bytes.len() == bytes.capacity() {
                // Grow by copying into a new buffer: the old one is wiped when dropped, where
                // an in-place reallocation would free a copy unwiped.
                let mut bigger = Zeroizing::new(Vec::with_capacity(
                    (bytes.capacity() * 2).min(self.max_bytes + 1).max(1),
                ));
                bigger.extend_from_slice(&bytes);
                bytes = bigger;
            }
            let start = bytes.len();
            let room = bytes.capacity() - start;
            bytes.resize(start + room, 0);
            let result = file.read(&mut bytes[start..]);
            match result {
                Ok(0) if start == 0 && !meta.is_file() && !hung_up => {
                    // A FIFO reads as ended while no writer has opened it yet; a writer
                    // started just before this process may still be on its way.
                    bytes.truncate(start);
                    hung_up = self.wait_readable(path, &file, deadline)? == Ready::HungUp;
                }
                Ok(0) => {
                    bytes.truncate(start);
                    break;
                }
                Ok(n) => bytes.truncate(start + n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => bytes.truncate(start),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    bytes.truncate(start);
                    hung_up = self.wait_readable(path, &file, deadline)? == Ready::HungUp;
                }
                Err(e) => return Err(self.error(path, io_reason(&e))),
            }
            if bytes.len() > self.max_bytes {
                return Err(too_large());
            }
        }
        if bytes.is_empty() {
            let why = if meta.is_file() {
                "the file is empty"
            } else {
                "nothing was written to the pipe"
            };
            return Err(self.error(path, why));
        }
        Ok(FileBytes {
            bytes,
            mode: permission_bits(&meta),
        })
    }

    fn check_type(&self, path: &Path, file_type: &std::fs::FileType) -> Result<()> {
        if file_type.is_file() || is_pipe(file_type) {
            Ok(())
        } else if file_type.is_dir() {
            Err(self.error(path, "it is a directory"))
        } else {
            Err(self.error(path, "it is a device or socket, not a file"))
        }
    }

    /// Waits until the pipe has data or its writers are gone, at most until `deadline`.
    #[cfg(unix)]
    fn wait_readable(&self, path: &Path, file: &std::fs::File, deadline: Instant) -> Result<Ready> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let left = deadline.saturating_duration_since(Instant::now());
        let timed_out = || {
            Error::sentence(
                ErrorKind::Timeout,
                format!(
                    "cannot read {} {}: nothing arrived within {} s",
                    self.what,
                    printable_path(path),
                    self.wait.as_secs_f64()
                ),
            )
        };
        if left.is_zero() {
            return Err(timed_out());
        }
        let timeout = Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(file, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => Err(timed_out()),
            Ok(_) => {
                let events = fds[0].revents();
                if events.contains(PollFlags::HUP) && !events.contains(PollFlags::IN) {
                    Ok(Ready::HungUp)
                } else {
                    Ok(Ready::Data)
                }
            }
            Err(rustix::io::Errno::INTR) => Ok(Ready::Data),
            Err(e) => Err(self.error(path, io_reason(&e.into()))),
        }
    }

    #[cfg(not(unix))]
    fn wait_readable(
        &self,
        path: &Path,
        _file: &std::fs::File,
        _deadline: Instant,
    ) -> Result<Ready> {
        Err(self.error(path, "it would block"))
    }
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(unix)]
fn is_pipe(file_type: &std::fs::FileType) -> bool {
    std::os::unix::fs::FileTypeExt::is_fifo(file_type)
}

#[cfg(not(unix))]
fn is_pipe(_file_type: &std::fs::FileType) -> bool {
    false
}

#[cfg(unix)]
fn permission_bits(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(meta.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn permission_bits(_meta: &std::fs::Metadata) -> Option<u32> {
    None
}

/// An I/O failure in plain words, without the OS's "(os error N)".
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "no such file".into(),
        K::PermissionDenied => "permission denied".into(),
        K::AlreadyExists => "it already exists".into(),
        K::IsADirectory => "it is a directory".into(),
        K::NotADirectory => "a part of the path is not a directory".into(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(cut) => text[..cut].to_lowercase(),
                None => text,
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A new FIFO (named pipe) in `dir`, made by `mkfifo`.
    fn fifo_in(dir: &Path) -> std::path::PathBuf {
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo");
        fifo
    }

    #[test]
    fn a_pipe_whose_writer_sends_nothing_fails_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = fifo_in(dir.path());
        // A writer that holds the FIFO open and never writes.
        let _writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let err = SmallFile::new("passphrase file")
            .wait(Duration::from_millis(200))
            .read(&fifo)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(err.to_string().contains("nothing arrived"), "{err}");
    }

    #[test]
    fn a_fifo_whose_writer_opens_late_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = fifo_in(dir.path());
        let writer = {
            let fifo = fifo.clone();
            // Its open blocks until the reader has opened the FIFO.
            std::thread::spawn(move || {
                use std::io::Write;
                let mut pipe = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
                pipe.write_all(b"secret\n").unwrap();
            })
        };
        let read = SmallFile::new("passphrase file").read(&fifo).unwrap();
        writer.join().unwrap();
        assert_eq!(read.bytes(), b"secret\n");
    }

    #[test]
    fn growing_stops_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'a'; 10_000]).unwrap();
        let read = SmallFile::new("input file").max_bytes(10_000).read(&path);
        assert_eq!(read.unwrap().bytes().len(), 10_000);
        let err = SmallFile::new("input file")
            .max_bytes(9_999)
            .read(&path)
            .unwrap_err();
        assert!(err.to_string().ends_with("larger than 9999 bytes"), "{err}");
    }
}
