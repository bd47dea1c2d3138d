import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What commands print: facts on stdout (plain or `--json`), errors and progress on stderr.
enum Output {
    static func line(_ text: String) {
        writeAll(1, Array((text + "\n").utf8))
    }

    static func error(_ message: String) {
        writeAll(2, Array("error: \(message)\n".utf8))
    }

    static func errorRaw(_ message: String) {
        writeAll(2, Array((message + "\n").utf8))
    }

    static func warning(_ message: String) {
        writeAll(2, Array("warning: \(message)\n".utf8))
    }

    /// Pretty, key-sorted JSON on stdout.
    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        writeAll(1, Array(data) + [0x0a])
    }

    /// Writes every byte or throws (EPIPE when the reader went away).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { try? write(fd, $0) }
    }

    static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw CommandFailure(message: "cannot write output: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    static var stderrIsTerminal: Bool { isatty(2) == 1 }
}

/// A one-line progress bar with rate and ETA, drawn on stderr only when it is a terminal.
final class ProgressBar {
    private let label: String
    private let total: UInt64
    private let enabled: Bool
    private let started = Date()
    private var lastDraw = Date.distantPast

    init(label: String, total: UInt64, minimumTotal: UInt64 = 64 << 20) {
        self.label = label
        self.total = total
        enabled = Output.stderrIsTerminal && total >= minimumTotal
    }

    func update(_ done: UInt64) {
        guard enabled else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || done == total else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(started), 0.001)
        let rate = Double(done) / elapsed
        let fraction = total == 0 ? 1 : Double(done) / Double(total)
        let width = 28
        let filled = Int(fraction * Double(width))
        let bar =
            String(repeating: "=", count: filled) + (filled < width ? ">" : "")
            + String(repeating: " ", count: max(0, width - filled - 1))
        let eta = rate > 0 ? Double(total - min(done, total)) / rate : 0
        let text = String(
            format: "\r%@ [%@] %3d%%  %@/s  ETA %@ ", label.count > 24 ? String(label.suffix(24)) : label, bar,
            Int(fraction * 100), Self.size(rate), Self.duration(eta))
        Output.writeAll(2, Array(text.utf8))
    }

    func finish() {
        guard enabled else { return }
        Output.writeAll(2, Array("\r\u{1B}[2K".utf8))
    }

    static func size(_ bytesPerSecond: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var v = bytesPerSecond
        var u = 0
        while v >= 1024 && u < units.count - 1 {
            v /= 1024
            u += 1
        }
        return String(format: "%.1f %@", v, units[u])
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}
