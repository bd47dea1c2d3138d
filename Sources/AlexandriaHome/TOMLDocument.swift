import Foundation
import TOMLKit

/// `config.toml`, read by a real TOML parser (TOMLKit, which wraps toml++, TOML 1.0) and turned into plain values:
/// `[table]` → key → value, with the top-level keys under "".
///
/// Everything TOML allows parses (multi-line arrays, floats, literal strings, dotted keys); what a setting cannot
/// be is refused with its line: dates and times, tables nested in tables (`[a.b]`, inline tables inside a table),
/// arrays nested deeper than `maxArrayDepth`. `HomeConfig` then refuses unknown tables and keys and wrong types,
/// and `Home.config()` names the line of the key each error is about, so a config that says something we cannot
/// use is never half-applied.
public struct TOMLDocument: Sendable {
    public enum Value: Sendable, Equatable {
        case string(String)
        case integer(Int)
        case float(Double)
        case boolean(Bool)
        case array([Value])
    }

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        /// 1-based; 0 when the error is about the whole file.
        public let line: Int
        public let message: String
        public var description: String { line > 0 ? "line \(line): \(message)" : message }
    }

    /// Named limits on the file.
    public static let maxBytes = 1 << 20
    public static let maxArrayItems = 4096
    public static let maxArrayDepth = 4

    /// Values by table name ("" for the top level), then key.
    public private(set) var tables: [String: [String: Value]] = ["": [:]]
    /// Where each table header and key is (`line(table:key:)`).
    private var lines: [String: Int] = [:]

    public init(parsing text: String) throws(ParseError) {
        guard text.utf8.count <= Self.maxBytes else {
            throw ParseError(line: 0, message: "the file is larger than \(Self.maxBytes) bytes")
        }
        lines = Self.locate(text)
        try Self.checkKeys(text)
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ParseError(line: error.source.begin.line, message: error.description)
        } catch {
            throw ParseError(line: 0, message: "\(error)")
        }
        for key in root.keys {
            guard let node = root[key] else { continue }
            if let table = node.table {
                var values: [String: Value] = [:]
                for inner in table.keys {
                    guard let child = table[inner] else { continue }
                    if let nested = child.table {
                        // One level of nesting, `[gateway.aliases]`, is a table of its own named "gateway.aliases"
                        // (HomeConfig says which such tables exist); deeper nesting is not a setting.
                        let name = "\(key).\(inner)"
                        var nestedValues: [String: Value] = [:]
                        for leaf in nested.keys {
                            guard let value = nested[leaf] else { continue }
                            guard value.table == nil else {
                                throw ParseError(
                                    line: line(table: name, key: leaf) ?? 0,
                                    message: "[\(name)] \(leaf): a table inside a table is not a setting")
                            }
                            nestedValues[leaf] = try convert(value, table: name, key: leaf, depth: 0)
                        }
                        tables[name] = nestedValues
                        continue
                    }
                    values[inner] = try convert(child, table: key, key: inner, depth: 0)
                }
                tables[key] = values
            } else {
                tables[""]![key] = try convert(node, table: "", key: key, depth: 0)
            }
        }
    }

    public subscript(table: String, key: String) -> Value? { tables[table]?[key] }

    /// The line of `key` in `[table]` (of the header if `key` is nil), found by reading the file as lines; nil if
    /// it is not written as `key = …` at the start of a line (a dotted key, say).
    public func line(table: String, key: String?) -> Int? {
        lines[key.map { "\(table)\u{0}\($0)" } ?? "\(table)\u{0}"]
    }

    private func convert(
        _ node: TOMLValueConvertible, table: String, key: String, depth: Int
    ) throws(ParseError)
        -> Value
    {
        func fail(_ message: String) -> ParseError {
            ParseError(
                line: line(table: table, key: key) ?? 0,
                message: "\(table.isEmpty ? "" : "[\(table)] ")\(key): \(message)")
        }
        switch node.type {
        case .string: return .string(node.string ?? "")
        case .int:
            guard let n = node.int else { throw fail("the number is out of range") }
            return .integer(n)
        case .double:
            guard let d = node.double, d.isFinite else { throw fail("a number must be finite") }
            return .float(d)
        case .bool: return .boolean(node.bool ?? false)
        case .array:
            guard depth < Self.maxArrayDepth else { throw fail("arrays nest too deeply") }
            guard let array = node.array else { return .array([]) }
            guard array.count <= Self.maxArrayItems else { throw fail("more than \(Self.maxArrayItems) items") }
            var items: [Value] = []
            for item in array { items.append(try convert(item, table: table, key: key, depth: depth + 1)) }
            return .array(items)
        case .table: throw fail("a table is not a setting here")
        case .date, .time, .dateTime: throw fail("dates and times are not settings; write a string")
        }
    }

    /// Table headers and `key =` lines by "table\0key" (headers by "table\0"), first occurrence.
    static func locate(_ text: String) -> [String: Int] {
        var out: [String: Int] = [:]
        var table = ""
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.drop { $0 == " " || $0 == "\t" }
            if line.hasPrefix("[") && !line.hasPrefix("[[") {
                guard let close = line.firstIndex(of: "]") else { continue }
                table = line[line.index(after: line.startIndex)..<close].trimmingCharacters(in: .whitespaces)
                if out["\(table)\u{0}"] == nil { out["\(table)\u{0}"] = index + 1 }
                continue
            }
            let key = line.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
            let rest = line.dropFirst(key.count).drop { $0 == " " || $0 == "\t" }
            if !key.isEmpty, rest.hasPrefix("="), out["\(table)\u{0}\(key)"] == nil {
                out["\(table)\u{0}\(key)"] = index + 1
            }
        }
        return out
    }
}

extension TOMLDocument {
    /// Refuses a table header or key that is not a dotted sequence of bare (`A-Za-z0-9_-`) or quoted keys, before
    /// toml++ sees it: its debug build asserts (aborts the process) on some such input, `[.gateway]` for one, where
    /// a config file must get a clear error. Lines inside multi-line strings are skipped.
    static func checkKeys(_ text: String) throws(ParseError) {
        var inMultiline: String?
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = Substring(raw.drop { $0 == " " || $0 == "\t" })
            if let delimiter = inMultiline {
                if line.components(separatedBy: delimiter).count % 2 == 0 { inMultiline = nil }
                continue
            }
            for delimiter in ["\"\"\"", "'''"] where line.components(separatedBy: delimiter).count % 2 == 0 {
                inMultiline = delimiter
            }
            if line.isEmpty || line.hasPrefix("#") { continue }
            var key: Substring
            if line.hasPrefix("[") {
                let inner = line.drop { $0 == "[" }
                guard let close = inner.firstIndex(of: "]") else {
                    throw ParseError(line: index + 1, message: "a table header without its closing ]")
                }
                key = inner[..<close]
            } else if let equals = line.firstIndex(of: "="), !line.hasPrefix("\""), !line.hasPrefix("'") {
                key = line[..<equals]
            } else {
                continue
            }
            guard validDottedKey(key) else {
                throw ParseError(
                    line: index + 1, message: "'\(key.trimmingCharacters(in: .whitespaces))' is not a valid key")
            }
        }
    }

    /// `a`, `a.b`, `"quoted key".b`, with optional blanks around the dots; nothing empty.
    static func validDottedKey(_ key: Substring) -> Bool {
        var rest = key[...]
        while true {
            rest = rest.drop { $0 == " " || $0 == "\t" }
            guard let first = rest.first else { return false }
            if first == "\"" || first == "'" {
                guard let end = rest.dropFirst().firstIndex(of: first) else { return false }
                rest = rest[rest.index(after: end)...]
            } else {
                let bare = rest.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
                guard !bare.isEmpty else { return false }
                rest = rest.dropFirst(bare.count)
            }
            rest = rest.drop { $0 == " " || $0 == "\t" }
            if rest.isEmpty { return true }
            guard rest.first == "." else { return false }
            rest = rest.dropFirst()
        }
    }
}

/// The name this type had when it read a hand-written subset of TOML.
public typealias TOMLSubset = TOMLDocument
