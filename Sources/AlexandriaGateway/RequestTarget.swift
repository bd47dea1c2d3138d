/// A request's origin-form target (`/a/b?x=y`), split into percent-decoded path segments and query items.
///
/// Decoding is strict because segments name repositories, revisions and file paths: a segment that decodes to
/// `.` or `..`, or contains `/`, `\`, NUL or another control character, or an escape that is not two hex digits, or
/// bytes that are not UTF-8, makes the whole target invalid (`400`). Nothing here touches the file system: file
/// paths are only ever compared with the paths a signed manifest lists.
public struct RequestTarget: Sendable, Equatable {
    /// Path segments after the leading `/`, decoded. `/v2/` is `["v2", ""]`.
    public let segments: [String]
    /// Query items in order, decoded (`+` is a space).
    public let query: [(name: String, value: String)]

    public static func == (a: RequestTarget, b: RequestTarget) -> Bool {
        a.segments == b.segments && a.query.map(\.name) == b.query.map(\.name)
            && a.query.map(\.value) == b.query.map(\.value)
    }

    /// Parses a target; nil if it is not origin-form or any part fails the rules above.
    public init?(_ uri: String) {
        guard uri.utf8.first == UInt8(ascii: "/") else { return nil }
        let parts = uri.utf8.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false)
        let path = parts[0].dropFirst()
        var segments: [String] = []
        for raw in path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard let s = Self.decode(raw, plusIsSpace: false), s != ".", s != "..",
                !s.unicodeScalars.contains(where: { $0 == "/" || $0 == "\\" || $0.value < 0x20 || $0.value == 0x7f })
            else { return nil }
            segments.append(s)
        }
        var query: [(String, String)] = []
        if parts.count == 2 {
            for item in parts[1].split(separator: UInt8(ascii: "&")) {
                let kv = item.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
                guard let name = Self.decode(kv[0], plusIsSpace: true),
                    let value = kv.count == 2 ? Self.decode(kv[1], plusIsSpace: true) : ""
                else { return nil }
                query.append((name, value))
            }
        }
        self.segments = segments
        self.query = query
    }

    /// The first value of a query item.
    public func query(_ name: String) -> String? { query.first { $0.name == name }?.value }

    static func decode(_ bytes: Substring.UTF8View.SubSequence, plusIsSpace: Bool) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let c = bytes[i]
            if c == UInt8(ascii: "%") {
                let h = bytes.index(after: i)
                guard h < bytes.endIndex, bytes.index(after: h) < bytes.endIndex,
                    let hi = hexValue(bytes[h]), let lo = hexValue(bytes[bytes.index(after: h)])
                else { return nil }
                out.append(hi << 4 | lo)
                i = bytes.index(h, offsetBy: 2)
                continue
            }
            out.append(plusIsSpace && c == UInt8(ascii: "+") ? 0x20 : c)
            i = bytes.index(after: i)
        }
        let text = String(decoding: out, as: UTF8.self)
        return text.utf8.elementsEqual(out) ? text : nil
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        case 0x41...0x46: c - 0x41 + 10
        default: nil
        }
    }
}
