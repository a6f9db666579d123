//! systemd socket activation for the BMC. With `vinod.socket` enabled, systemd owns the
//! listening socket and hands it to every start of `vinod.service` (file descriptor 3,
//! `LISTEN_PID`/`LISTEN_FDS`), so the socket outlives restarts and upgrades: connections that
//! arrive while vinod is down wait in its backlog and are answered by the next vinod instead
//! of being refused.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{SockType, getsockopt, sockopt};

use super::RedfishError;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;

/// Whether the passed socket was taken already: it has one owner.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The listening TCP socket systemd passed to this process, if any (`LISTEN_PID` names this
/// process and `LISTEN_FDS` is at least 1); taken at most once. It is made close-on-exec so
/// the dnsmasq servers vinod starts, which outlive it, never hold the BMC's socket.
pub fn inherited_listener() -> Result<Option<TcpListener>, RedfishError> {
    let ours = std::env::var("LISTEN_PID").is_ok_and(|p| p == std::process::id().to_string());
    let count: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if !ours || count == 0 || TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    let refuse = |why: &str| RedfishError::Serve {
        addr: format!("the socket systemd passed (fd {FIRST_FD})"),
        source: std::io::Error::other(why.to_string()),
    };
    // SAFETY: by the socket-activation protocol, checked above (LISTEN_PID is this process,
    // LISTEN_FDS >= 1), descriptor 3 was opened by systemd for this process and nothing else
    // in it owns it; TAKEN makes this the only place that takes it.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(FIRST_FD) };
    match getsockopt(&fd, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        _ => return Err(refuse("not a stream socket")),
    }
    if !getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false) {
        return Err(refuse("not listening"));
    }
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| refuse(&format!("cannot set close-on-exec: {e}")))?;
    Ok(Some(TcpListener::from(fd)))
}
