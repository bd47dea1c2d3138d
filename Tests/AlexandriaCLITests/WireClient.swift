import AlexandriaWire
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking TCP client that speaks wire v1 frames from the spec, for tests that play a hostile client against a
/// real `alexandria node run` process.
final class WireClient {
    let fd: Int32
    var buffer: [UInt8] = []

    init?(port: Int, timeoutSeconds: Int = 5) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard ok == 0 else {
            close(fd)
            return nil
        }
    }

    deinit { close(fd) }

    func send(_ m: WireMessage) {
        let payload = m.encodedPayload
        let n = UInt32(payload.count + 1)
        let frame =
            [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff), m.type] + payload
        _ = frame.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    enum Received {
        case message(type: UInt8, payload: [UInt8])
        /// The peer closed the connection.
        case closed
        case timedOut
    }

    /// The next frame, or closed / timed out.
    func receive() -> Received {
        while true {
            if buffer.count >= 5 {
                let n = Int(buffer[0]) << 24 | Int(buffer[1]) << 16 | Int(buffer[2]) << 8 | Int(buffer[3])
                if buffer.count >= 4 + n {
                    let type = buffer[4]
                    let payload = Array(buffer[5..<(4 + n)])
                    buffer.removeFirst(4 + n)
                    return .message(type: type, payload: payload)
                }
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let got = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if got == 0 { return .closed }
            if got < 0 { return errno == EAGAIN || errno == EWOULDBLOCK ? .timedOut : .closed }
            buffer += chunk[0..<got]
        }
    }
}
