import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// The node's own failures at the socket and process level: what failed, where (host:port), and what to do.
///
/// Errors from the network library (`IOError`, `SocketAddressError`, `ChannelError`, `NIOConnectionError`) name a
/// system call and an errno, or a type, and never the address; users must never see them raw. `PeerError.listen`
/// and `PeerError.connect` turn them into sentences.
public struct PeerError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The listening socket could not be bound (port in use, a privileged port, an address not on this host).
        case listen
        /// An outbound connection failed (refused, unreachable, timed out, name not resolved).
        case connect
        /// A peer's answer failed what the user's request anchors (a manifest id, a publisher id); nothing stored.
        case refused
        /// A fetch's output was refused before anything was written (a link on the way, an existing file without
        /// `--force`), or could not be created or moved into place.
        case output
        /// A release fetch stopped with a file no peer asked could provide; nothing was written to the folder.
        case incomplete
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// Why `bind`/`listen` on `host:port` failed, and what to do about it.
    public static func listen(host: String, port: Int, _ error: Error) -> PeerError {
        let address = PeerAddress(host: host, port: port).description
        let what = "cannot listen on \(address)"
        switch errnoCode(error) {
        case EACCES?, EPERM?:
            return PeerError(
                .listen,
                "\(what): permission denied. Ports below 1024 need root or CAP_NET_BIND_SERVICE, and a node should "
                    + "not run as root: listen on a port from 1024 up (--listen \(host):7420, or [node] listen), or "
                    + "grant the capability (AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit)")
        case EADDRINUSE?:
            return PeerError(
                .listen,
                "\(what): the address is already in use (another node, or another program, listens there); stop "
                    + "it, or choose another port with --listen HOST:PORT")
        case EADDRNOTAVAIL?:
            return PeerError(
                .listen,
                "\(what): \(host) is not an address of this machine; use one of its addresses, 127.0.0.1 or 0.0.0.0")
        case let code?:
            return PeerError(.listen, "\(what): \(String(cString: strerror(code))); check --listen or [node] listen")
        case nil:
            if error is SocketAddressError {
                return PeerError(
                    .listen, "\(what): cannot resolve \(host); give an IP address or a name this machine resolves")
            }
            return PeerError(.listen, "\(what): \(error)")
        }
    }

    /// Why a connection to `address` failed, and what to do about it.
    public static func connect(to address: String, _ error: Error) -> PeerError {
        let what = "cannot connect to \(address)"
        if let error = error as? PeerError { return error }
        if case .connectTimeout? = error as? ChannelError {
            return PeerError(
                .connect, "\(what): no answer in time; check the address, that the node runs, and firewalls between")
        }
        if let failure = error as? NIOConnectionError {
            guard let inner = failure.connectionErrors.first?.error ?? failure.dnsAError ?? failure.dnsAAAAError
            else {
                return PeerError(.connect, "\(what): cannot resolve the host name; check it")
            }
            return connect(to: address, inner)
        }
        switch errnoCode(error) {
        case ECONNREFUSED?:
            return PeerError(
                .connect,
                "\(what): connection refused (no node listens there); check the port and that `node run` is running")
        case EHOSTUNREACH?, ENETUNREACH?:
            return PeerError(.connect, "\(what): host unreachable; check the address and the network")
        case ETIMEDOUT?:
            return PeerError(.connect, "\(what): timed out; check the address and firewalls between")
        case let code?:
            return PeerError(.connect, "\(what): \(String(cString: strerror(code)))")
        case nil:
            if error is SocketAddressError {
                return PeerError(.connect, "\(what): cannot resolve the host name; check it")
            }
            return PeerError(.connect, "\(what): \(error)")
        }
    }

    /// "`peer`: why" for a list of peers that failed; a `PeerError` already names its peer.
    public static func reason(_ peer: String, _ error: Error) -> String {
        if let error = error as? PeerError { return error.message }
        return "\(peer): \(error)"
    }

    /// The same for a reason already in words: not repeating the peer if the words name it.
    public static func reason(_ peer: String, _ text: String) -> String {
        text.contains(peer) ? text : "\(peer): \(text)"
    }

    /// The errno inside a network library error, if there is one.
    static func errnoCode(_ error: Error) -> Int32? {
        if let io = error as? IOError { return io.errnoCode }
        return nil
    }
}
