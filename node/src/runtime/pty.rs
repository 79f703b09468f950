//! Pseudo-terminals for containers and execs with `tty: true` / `-t` (the
//! process runtime's shim and its exec): opening a pair, making the slave a
//! child's controlling terminal, resizing, and an async handle on the master
//! for the node daemon.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;

use super::TermSize;

/// Opens a pseudo-terminal: `(master, slave)`, both close-on-exec (a child
/// gets the slave through its stdio, which `Command` dups without the flag).
pub fn open() -> io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave): (libc::c_int, libc::c_int) = (-1, -1);
    // SAFETY: openpty writes two descriptors into the given places; name,
    // termios and winsize may be null.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openpty succeeded, so both are open descriptors we now own.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        // SAFETY: F_SETFD on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((master, slave))
}

/// Sets the terminal's size (the kernel tells its foreground process group
/// with SIGWINCH). `fd` is either side of the terminal.
pub fn set_size(fd: RawFd, size: TermSize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which is valid.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// For `pre_exec`, in the child: a new session whose controlling terminal is
/// its stdin (the slave). The child must not already lead a process group
/// (no `process_group(0)`): the new session makes it lead one anyway.
pub fn make_controlling_terminal() -> io::Result<()> {
    // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the slave.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether a read error on a master means the terminal is gone: Linux
/// answers EIO once every slave descriptor is closed.
pub fn is_hangup(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EIO)
}

/// A terminal's master side, read and written without blocking the runtime.
pub struct Master {
    fd: AsyncFd<OwnedFd>,
}

impl Master {
    /// Wraps a master descriptor (made non-blocking).
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: the OwnedFd is an open descriptor that stays open, the
        // same one, for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(Master { fd })
    }

    /// Reads what the terminal's programs wrote; `Ok(0)` once the terminal
    /// is gone (every slave closed).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let r = guard.try_io(|fd| {
                // SAFETY: reads into a buffer of the given length.
                let n = unsafe {
                    libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n.unsigned_abs())
                }
            });
            match r {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if is_hangup(&e) => return Ok(0),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }

    /// What is already waiting to be read, without waiting (empty when
    /// nothing is, or the terminal is gone).
    pub fn read_ready(&self, buf: &mut [u8]) -> usize {
        // SAFETY: reads into a buffer of the given length from a non-blocking descriptor.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).unwrap_or(0)
    }

    /// Writes all of `data` as the terminal's input (typed keys).
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            let r = guard.try_io(|fd| {
                // SAFETY: writes from a buffer of the given length.
                let n = unsafe {
                    libc::write(fd.get_ref().as_raw_fd(), data.as_ptr().cast(), data.len())
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n.unsigned_abs())
                }
            });
            match r {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// Sets the terminal's size.
    pub fn resize(&self, size: TermSize) -> io::Result<()> {
        set_size(self.fd.as_raw_fd(), size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_on_the_terminal_sees_a_tty_its_size_and_its_input() {
        let (master, slave) = open().expect("openpty");
        set_size(
            master.as_raw_fd(),
            TermSize {
                width: 91,
                height: 23,
            },
        )
        .expect("size");
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "test -t 0 && stty size; read l; echo got:$l"]);
        let (i, o, e) = (
            slave.try_clone().expect("dup"),
            slave.try_clone().expect("dup"),
            slave,
        );
        cmd.stdin(i).stdout(o).stderr(e);
        // SAFETY: the hook only calls async-signal-safe functions.
        unsafe { cmd.pre_exec(make_controlling_terminal) };
        let mut child = cmd.spawn().expect("spawn");
        drop(cmd);
        let master = Master::new(master).expect("master");
        master.write_all(b"hello\n").await.expect("type");
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        let read = async {
            loop {
                match master.read(&mut buf).await.expect("read") {
                    0 => break,
                    n => seen.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), read)
            .await
            .expect("the terminal ends with the child");
        let text = String::from_utf8_lossy(&seen);
        assert!(
            text.contains("23 91"),
            "stty size on the terminal: {text:?}"
        );
        assert!(
            text.contains("got:hello"),
            "input typed on the terminal: {text:?}"
        );
        // the terminal echoes and turns \n into \r\n, as terminals do
        assert!(text.contains("hello\r\n"), "echo: {text:?}");
        assert!(child.wait().await.expect("wait").success());
    }
}
