/// What a `Range` request header asks of a representation of `size` bytes (RFC 9110 §14), decided without I/O.
///
/// Only the `bytes` unit and a single range are served. Pitfalls this type exists for: a range past the end is
/// `416`, not an empty `206`; a last-byte position past the end is clamped, a first-byte position is not; a suffix
/// range longer than the file is the whole file; a file of zero bytes satisfies no range; numbers are parsed
/// without overflow (at most 20 digits, and only values that fit a `UInt64`).
public enum ByteRangeRequest: Equatable, Sendable {
    /// No `Range` header, an unknown unit, or an `If-Range` that does not match: the whole representation (`200`).
    case whole
    /// One satisfiable range, half-open (`206` with `Content-Range: bytes first-last/size`).
    case partial(Range<UInt64>)
    /// A malformed specifier, more than one range, or one that starts at or past the end (`416` with
    /// `Content-Range: bytes */size`). This gateway does not serve `multipart/byteranges`.
    case unsatisfiable

    /// Most digits a position may have (`UInt64.max` has 20); longer is malformed before any arithmetic.
    static let maxDigits = 20

    /// Decides a `Range` header value (nil if absent) for a representation of `size` bytes. `ifRangeMatches` is false
    /// when an `If-Range` header was sent and does not name this representation's entity tag.
    public init(header: String?, size: UInt64, ifRangeMatches: Bool = true) {
        guard let header, ifRangeMatches else {
            self = .whole
            return
        }
        let text = header.trimmingSpaces
        guard let equals = text.firstIndex(of: "=") else {
            self = .unsatisfiable
            return
        }
        // A unit other than bytes is ignored (RFC 9110 §14.2: a server MAY ignore a range it does not understand).
        guard text[..<equals].trimmingSpaces.lowercased() == "bytes" else {
            self = .whole
            return
        }
        let specs = text[text.index(after: equals)...].split(separator: ",", omittingEmptySubsequences: false)
        guard specs.count == 1, let dash = specs[0].firstIndex(of: "-") else {
            self = .unsatisfiable
            return
        }
        let spec = specs[0]
        let first = spec[..<dash].trimmingSpaces
        let last = spec[spec.index(after: dash)...].trimmingSpaces
        if first.isEmpty {
            // Suffix: the last N bytes.
            guard let n = Self.number(last), n > 0, size > 0 else {
                self = .unsatisfiable
                return
            }
            self = .partial((size - min(n, size))..<size)
            return
        }
        guard let start = Self.number(first) else {
            self = .unsatisfiable
            return
        }
        var end = size  // exclusive
        if !last.isEmpty {
            guard let l = Self.number(last), l >= start else {
                self = .unsatisfiable
                return
            }
            end = l == UInt64.max ? size : min(size, l + 1)
        }
        guard start < size else {
            self = .unsatisfiable
            return
        }
        self = .partial(start..<end)
    }

    static func number(_ text: Substring) -> UInt64? {
        guard !text.isEmpty, text.count <= maxDigits, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        return UInt64(text)
    }
}

extension StringProtocol {
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return s
    }
}
