/// A strict reader for the subset of TOML that Alexandria's config uses: `[table]` and `[dotted.table]` headers, `key = value` lines
/// with basic strings, integers (with `_` separators), booleans and one-line arrays of those, and `#` comments.
///
/// Anything else (inline tables, dates, floats, multi-line strings, dotted keys, duplicate keys) is an error with
/// its line number, never silently ignored: a config that says something we cannot read must not be half-applied.
public struct TOMLSubset: Sendable {
    public enum Value: Sendable, Equatable {
        case string(String)
        case integer(Int)
        case boolean(Bool)
        case array([Value])
    }

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let line: Int
        public let message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// Named limits on the file.
    public static let maxBytes = 1 << 20
    public static let maxArrayItems = 4096

    /// Values by table name ("" for the top level), then key.
    public private(set) var tables: [String: [String: Value]] = ["": [:]]

    public init(parsing text: String) throws(ParseError) {
        guard text.utf8.count <= Self.maxBytes else {
            throw ParseError(line: 0, message: "the file is larger than \(Self.maxBytes) bytes")
        }
        var table = ""
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            var scanner = Scanner(Substring(rawLine), line: lineNumber)
            scanner.skipSpaces()
            if scanner.atEndOrComment { continue }
            if scanner.peek == UInt8(ascii: "[") {
                scanner.advance()
                var name = try scanner.bareKey()
                // A dotted table name (`[gateway.aliases]`) is kept as one name with its dots.
                while scanner.peek == UInt8(ascii: ".") {
                    scanner.advance()
                    name += "." + (try scanner.bareKey())
                }
                guard scanner.peek == UInt8(ascii: "]") else { throw scanner.error("expected ']' after table name") }
                scanner.advance()
                scanner.skipSpaces()
                guard scanner.atEndOrComment else { throw scanner.error("unexpected text after the table header") }
                guard tables[name] == nil else { throw scanner.error("table [\(name)] appears twice") }
                tables[name] = [:]
                table = name
                continue
            }
            let key = try scanner.bareKey()
            scanner.skipSpaces()
            guard scanner.peek == UInt8(ascii: "=") else { throw scanner.error("expected '=' after '\(key)'") }
            scanner.advance()
            scanner.skipSpaces()
            let value = try scanner.value(depth: 0)
            scanner.skipSpaces()
            guard scanner.atEndOrComment else { throw scanner.error("unexpected text after the value of '\(key)'") }
            guard tables[table]![key] == nil else { throw scanner.error("'\(key)' is set twice") }
            tables[table]![key] = value
        }
    }

    public subscript(table: String, key: String) -> Value? { tables[table]?[key] }

    private struct Scanner {
        let bytes: [UInt8]
        var i = 0
        let line: Int

        init(_ text: Substring, line: Int) {
            var b = Array(text.utf8)
            if b.last == UInt8(ascii: "\r") { b.removeLast() }
            bytes = b
            self.line = line
        }

        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }
        var atEndOrComment: Bool { peek == nil || peek == UInt8(ascii: "#") }
        mutating func advance() { i += 1 }
        mutating func skipSpaces() {
            while let c = peek, c == 0x20 || c == 0x09 { i += 1 }
        }
        func error(_ message: String) -> ParseError { ParseError(line: line, message: message) }

        mutating func bareKey() throws(ParseError) -> String {
            let start = i
            while let c = peek,
                (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c == 0x5f
                    || c == 0x2d
            {
                i += 1
            }
            guard i > start else { throw error("expected a key (letters, digits, '_' or '-')") }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        mutating func value(depth: Int) throws(ParseError) -> Value {
            guard let c = peek else { throw error("expected a value") }
            switch c {
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "["):
                guard depth < 4 else { throw error("arrays nest too deeply") }
                advance()
                var items: [Value] = []
                skipSpaces()
                while peek != UInt8(ascii: "]") {
                    guard items.count < TOMLSubset.maxArrayItems else { throw error("too many array items") }
                    items.append(try value(depth: depth + 1))
                    skipSpaces()
                    if peek == UInt8(ascii: ",") {
                        advance()
                        skipSpaces()
                    } else if peek != UInt8(ascii: "]") {
                        throw error("expected ',' or ']' in an array")
                    }
                }
                advance()
                return .array(items)
            case UInt8(ascii: "t"), UInt8(ascii: "f"):
                let word = try bareKey()
                switch word {
                case "true": return .boolean(true)
                case "false": return .boolean(false)
                default: throw error("unexpected '\(word)'; strings need double quotes")
                }
            default:
                let start = i
                if peek == UInt8(ascii: "-") || peek == UInt8(ascii: "+") { advance() }
                var digits = ""
                var lastUnderscore = true
                while let d = peek, (d >= 0x30 && d <= 0x39) || d == 0x5f {
                    if d == 0x5f {
                        guard !lastUnderscore else { throw error("misplaced '_' in a number") }
                        lastUnderscore = true
                    } else {
                        digits.append(Character(UnicodeScalar(d)))
                        lastUnderscore = false
                    }
                    advance()
                }
                guard !digits.isEmpty, !lastUnderscore, digits.count <= 18 else {
                    throw error("expected a value (a \"string\", an integer, true, false or an array)")
                }
                let negative = bytes[start] == UInt8(ascii: "-")
                return .integer((negative ? -1 : 1) * Int(digits)!)
            }
        }

        mutating func string() throws(ParseError) -> String {
            advance()
            var out: [UInt8] = []
            while let c = peek {
                advance()
                switch c {
                case UInt8(ascii: "\""):
                    guard let s = String(validating: out, as: UTF8.self) else { throw error("invalid UTF-8") }
                    return s
                case UInt8(ascii: "\\"):
                    guard let e = peek else { throw error("unfinished escape") }
                    advance()
                    switch e {
                    case UInt8(ascii: "\""): out.append(0x22)
                    case UInt8(ascii: "\\"): out.append(0x5c)
                    case UInt8(ascii: "n"): out.append(0x0a)
                    case UInt8(ascii: "t"): out.append(0x09)
                    default: throw error("unsupported escape '\\\(Character(UnicodeScalar(e)))'")
                    }
                case 0x00..<0x20, 0x7f:
                    throw error("control character in a string")
                default:
                    out.append(c)
                }
            }
            throw error("unterminated string")
        }
    }
}
