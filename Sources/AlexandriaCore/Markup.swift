/// Escaping text into XML and HTML, the one place that does it (S3 request bodies, the gateway's status pages).
public enum Markup {
    /// `text` with `& < > " '` replaced by their character references, so it can stand in element content or in a
    /// quoted attribute value of XML 1.0 or HTML 5 and never be read as markup. Everything else passes unchanged
    /// (callers that put text where control characters matter remove them first).
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
