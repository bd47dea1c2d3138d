import ArgumentParser
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// `--log-level` and `--log-format` for the daemon. Both are checked by the argument parser, so an unknown value
/// is a usage error (exit 2) that lists the valid ones, never a silent fallback.
struct LogOptions: ParsableArguments {
    enum Level: String, CaseIterable, ExpressibleByArgument {
        case trace, debug, info, notice, warning, error, critical
        var logger: Logger.Level {
            switch self {
            case .trace: .trace
            case .debug: .debug
            case .info: .info
            case .notice: .notice
            case .warning: .warning
            case .error: .error
            case .critical: .critical
            }
        }
    }

    enum Format: String, CaseIterable, ExpressibleByArgument {
        /// swift-log's stream format: `TIMESTAMP LEVEL LABEL: METADATA [SOURCE] MESSAGE`.
        case text
        /// One JSON object per line (`JSONLogHandler`), for log shippers.
        case json
    }

    @Option(help: "Log level: \(Level.allCases.map(\.rawValue).joined(separator: ", ")).")
    var logLevel: Level = .info

    @Option(help: "Log format on stderr: text, or json (one object per line).")
    var logFormat: Format = .text

    /// Installs the chosen handler for the whole process (once).
    func bootstrap() {
        let level = logLevel.logger
        let format = logFormat
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}

/// A `LogHandler` that writes one JSON object per line to stderr:
///
/// ```
/// {"time":"2026-11-29T23:03:26.123Z","level":"info","label":"alexandria.node","message":"listening",
///  "source":"AlexandriaPeer","metadata":{"listen.port":"7420","node.id":"ed25519:…"}}
/// ```
///
/// Keys in that order; `metadata` only when there is some (the handler's, then the logger's, then the call's, later
/// ones winning), its keys sorted. Strings are escaped per RFC 8259 (control characters as `\u00XX`), so a message
/// that contains a newline still takes one line. Each line goes out in one `write(2)`, so lines from several threads
/// never interleave.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        var line = "{\"time\":"
        Self.append(string: Self.timestamp(), to: &line)
        line += ",\"level\":"
        Self.append(string: event.level.rawValue, to: &line)
        line += ",\"label\":"
        Self.append(string: label, to: &line)
        line += ",\"message\":"
        Self.append(string: event.message.description, to: &line)
        line += ",\"source\":"
        Self.append(string: event.source, to: &line)
        if !merged.isEmpty {
            line += ",\"metadata\":"
            Self.append(value: .dictionary(merged), to: &line)
        }
        line += "}\n"
        Output.writeAll(2, Array(line.utf8))
    }

    static func append(value: Logger.Metadata.Value, to out: inout String) {
        switch value {
        case .string(let s): append(string: s, to: &out)
        case .stringConvertible(let c): append(string: c.description, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                append(value: item, to: &out)
            }
            out += "]"
        case .dictionary(let dictionary):
            out += "{"
            for (i, key) in dictionary.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                append(string: key, to: &out)
                out += ":"
                append(value: dictionary[key]!, to: &out)
            }
            out += "}"
        }
    }

    static func append(string: String, to out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    /// UTC, RFC 3339 with milliseconds.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), now.tv_nsec / 1_000_000)
    }
}
