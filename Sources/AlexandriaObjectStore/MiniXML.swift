import AlexandriaCore

/// Just enough XML to read S3's responses: the text of `<Name>…</Name>` elements, and the blocks of a repeated
/// element. S3 responses have no attributes on the elements we read, no CDATA and no comments; anything else is
/// ignored rather than interpreted. Input is bounded by the caller (`ObjectStoreLimits.maxXMLBytes`).
enum MiniXML {
    /// The raw inner text of each `<name>…</name>` in `xml`, in order, not entity-decoded.
    static func blocks(_ name: String, in xml: Substring) -> [Substring] {
        let open = "<\(name)>"
        let close = "</\(name)>"
        var out: [Substring] = []
        var rest = xml[...]
        while let start = find(open, in: rest) {
            guard let end = find(close, in: rest[start.upperBound...]) else { break }
            out.append(rest[start.upperBound..<end.lowerBound])
            rest = rest[end.upperBound...]
        }
        return out
    }

    /// The first occurrence of `needle` in `hay` (plain UTF-8 byte comparison), without Foundation.
    static func find(_ needle: String, in hay: Substring) -> Range<Substring.Index>? {
        let n = Array(needle.utf8)
        guard let first = n.first else { return nil }
        let utf8 = hay.utf8
        var i = utf8.startIndex
        while let hit = utf8[i...].firstIndex(of: first) {
            var j = hit
            var k = 0
            while k < n.count, j < utf8.endIndex, utf8[j] == n[k] {
                j = utf8.index(after: j)
                k += 1
            }
            if k == n.count { return hit..<j }
            i = utf8.index(after: hit)
        }
        return nil
    }

    /// The entity-decoded text of the first `<name>…</name>`, or nil.
    static func text(_ name: String, in xml: Substring) -> String? {
        blocks(name, in: xml).first.map { decode($0) }
    }

    static func decode(_ s: Substring) -> String {
        guard s.contains("&") else { return String(s) }
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "&", let semi = s[i...].firstIndex(of: ";"), s.distance(from: i, to: semi) <= 10 {
                let entity = s[s.index(after: i)..<semi]
                var scalar: Unicode.Scalar?
                switch entity {
                case "amp": scalar = "&"
                case "lt": scalar = "<"
                case "gt": scalar = ">"
                case "quot": scalar = "\""
                case "apos": scalar = "'"
                default:
                    if entity.hasPrefix("#x") {
                        scalar = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
                    } else if entity.hasPrefix("#") {
                        scalar = UInt32(entity.dropFirst(1)).flatMap(Unicode.Scalar.init)
                    }
                }
                if let scalar {
                    out.unicodeScalars.append(scalar)
                    i = s.index(after: semi)
                    continue
                }
            }
            out.append(s[i])
            i = s.index(after: i)
        }
        return out
    }

    /// `s` with `& < > " '` escaped, for keys inside a request body.
    static func escape(_ s: String) -> String { Markup.escape(s) }
}
