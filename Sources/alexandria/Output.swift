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

/// A one-line progress bar with a byte rate and an ETA, drawn on stderr only when it is a terminal.
///
/// The line always fits the terminal (its width read with TIOCGWINSZ on every draw, else `COLUMNS`, else 80): it
/// never reaches the last column, so a terminal never wraps it and every update rewrites the same line. A long label
/// is cut in the middle, keeping its start and its end (a file's extension). The rate is bytes per second over the
/// last few seconds; the ETA is shown only once it means something (after a second, and a rate to go by), else
/// `ETA --`.
final class ProgressBar {
    private let label: String
    private let total: UInt64
    private let enabled: Bool
    private let started = Date()
    private var lastDraw = Date.distantPast
    private var drawn = false
    /// (seconds since start, work done, bytes done) at recent draws: the rate is measured over this window.
    private var samples: [(t: Double, done: UInt64, bytes: UInt64)] = []

    /// Seconds the rate is averaged over.
    static let rateWindow = 3.0
    /// No ETA before this much time, or at all beyond `maximumETA` (a stall, not an estimate).
    static let etaAfter = 1.0
    static let maximumETA = 100.0 * 3600

    /// `total` is in the unit `update` counts: bytes, unless each update also says how many bytes are done.
    init(label: String, total: UInt64, minimumTotal: UInt64 = 64 << 20) {
        self.label = label
        self.total = total
        enabled = Output.stderrIsTerminal && total >= minimumTotal
    }

    /// `done` of `total`; `bytes` the bytes done when `done` counts something else (chunks), else `done` itself.
    func update(_ done: UInt64, bytes: UInt64? = nil) {
        guard enabled else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || done >= total else { return }
        lastDraw = now
        let t = now.timeIntervalSince(started)
        samples.append((t, done, bytes ?? done))
        while samples.count > 2, t - samples[1].t >= Self.rateWindow { samples.removeFirst() }
        let first = samples[0]
        let span = t - first.t
        let bytesPerSecond = span > 0.05 ? Double((bytes ?? done) - min(first.bytes, bytes ?? done)) / span : nil
        let workPerSecond = span > 0.05 ? Double(done - min(first.done, done)) / span : nil
        var eta: Double?
        if t >= Self.etaAfter, let rate = workPerSecond, rate > 0 {
            let left = Double(total - min(done, total)) / rate
            if left <= Self.maximumETA { eta = left }
        }
        let fraction = total == 0 ? 1 : min(1, Double(done) / Double(total))
        let text = Self.line(
            label: label, fraction: fraction, bytesPerSecond: bytesPerSecond, eta: eta,
            columns: Self.terminalColumns())
        drawn = true
        Output.writeAll(2, Array(("\r" + text + "\u{1B}[K").utf8))
    }

    func finish() {
        guard enabled, drawn else { return }
        Output.writeAll(2, Array("\r\u{1B}[2K".utf8))
    }

    /// The progress line for a terminal `columns` wide: at most `columns - 1` characters. What does not fit goes in
    /// this order: the bar shrinks to 10 cells, the label to 8 characters, then the bar, the ETA, the rate and the
    /// label go.
    static func line(label: String, fraction: Double, bytesPerSecond: Double?, eta: Double?, columns: Int) -> String {
        let room = max(columns - 1, 4)
        let percent = String(format: "%3d%%", Int(fraction * 100))
        // Fixed widths, so the bar does not jump as the figures change.
        let rate = padLeft(bytesPerSecond.map { size($0) + "/s" } ?? "-- B/s", 10)
        let etaText = padRight("ETA " + (eta.map(duration) ?? "--"), 10)
        var stats = [percent, rate, etaText]
        func statsText() -> String { stats.joined(separator: " ") }
        let minimumBar = 10 + 2
        let minimumLabel = min(label.count, 8)
        // Drop stats from the right until a minimal label and the stats fit.
        while stats.count > 1 && minimumLabel + 1 + statsText().count > room { stats.removeLast() }
        let right = statsText()
        if right.count >= room { return String(right.prefix(room)) }
        var left = room - right.count - 1  // room for the label, a space, and the bar
        var barCells = 0
        if left >= minimumLabel + 1 + minimumBar {
            // The label takes what it needs (up to 40 characters); the bar the rest, at most 30 cells.
            let labelWidth = min(label.count, 40, left - 1 - minimumBar)
            barCells = min(30, left - labelWidth - 1 - 2)
            left = labelWidth
        }
        let shownLabel = truncateMiddle(label, to: left)
        var out = shownLabel
        if barCells > 0 {
            let filled = min(barCells, Int(fraction * Double(barCells)))
            let bar =
                String(repeating: "=", count: filled) + (filled < barCells ? ">" : "")
                + String(repeating: " ", count: max(0, barCells - filled - 1))
            out += (out.isEmpty ? "" : " ") + "[" + bar + "]"
        }
        out += (out.isEmpty ? "" : " ") + right
        while out.hasSuffix(" ") { out.removeLast() }
        return out.count <= room ? out : String(out.prefix(room))
    }

    static func padLeft(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }

    static func padRight(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }

    /// `text` in at most `width` characters: its start and end around an ellipsis when it is longer.
    static func truncateMiddle(_ text: String, to width: Int) -> String {
        guard text.count > width else { return text }
        guard width > 1 else { return String(text.prefix(max(width, 0))) }
        let tail = (width - 1) / 2
        let head = width - 1 - tail
        return String(text.prefix(head)) + "…" + String(text.suffix(tail))
    }

    /// The terminal's width: TIOCGWINSZ on stderr, else `COLUMNS`, else 80.
    static func terminalColumns() -> Int {
        var size = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        if let text = ProcessInfo.processInfo.environment["COLUMNS"], let n = Int(text), n > 0 { return n }
        return 80
    }

    static func size(_ bytesPerSecond: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
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
