import AlexandriaCore
import Crypto
import Foundation
import NIOHTTP1

/// A piece of HTML whose interpolated strings are escaped: `"<td>\(name)</td>" as HTML` escapes `name`, while an
/// interpolated `HTML` goes in as markup. Everything that came from a manifest, a log entry, a peer or the request
/// is a `String`, so it cannot become markup by mistake; only literals written here can.
public struct HTML: ExpressibleByStringInterpolation, Sendable {
    public private(set) var markup: String

    public init(stringLiteral value: String) { markup = value }
    public init(stringInterpolation: Interpolation) { markup = stringInterpolation.out }
    init(markup: String) { self.markup = markup }

    public struct Interpolation: StringInterpolationProtocol {
        var out = ""
        public init(literalCapacity: Int, interpolationCount: Int) {
            out.reserveCapacity(literalCapacity + 16 * interpolationCount)
        }
        public mutating func appendLiteral(_ literal: String) { out += literal }
        /// Text: escaped (`Markup.escape`), control characters other than tab and newline shown as U+FFFD.
        public mutating func appendInterpolation(_ text: String) { out += HTML.escape(text) }
        public mutating func appendInterpolation(_ html: HTML) { out += html.markup }
        public mutating func appendInterpolation(_ parts: [HTML]) { for p in parts { out += p.markup } }
        public mutating func appendInterpolation<T: BinaryInteger>(_ n: T) { out += String(n) }
    }

    public static func + (a: HTML, b: HTML) -> HTML { HTML(markup: a.markup + b.markup) }
    public static func += (a: inout HTML, b: HTML) { a.markup += b.markup }

    static func escape(_ text: String) -> String {
        Markup.escape(
            String(
                String.UnicodeScalarView(
                    text.unicodeScalars.map {
                        ($0.value < 0x20 && $0 != "\t" && $0 != "\n") || $0.value == 0x7f ? "\u{FFFD}" : $0
                    })))
    }

    /// A site-relative URL from path segments, each percent-encoded (only unreserved characters stay), and query
    /// items. Safe in an attribute after escaping; never a scheme, so never `javascript:`.
    static func url(_ segments: [String], query: [(String, String)] = []) -> String {
        var out = "/" + segments.map(percent).joined(separator: "/")
        if !query.isEmpty { out += "?" + query.map { percent($0.0) + "=" + percent($0.1) }.joined(separator: "&") }
        return out
    }

    static func percent(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += "%" + String(b, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// The frame every page shares: one inline style sheet (allowed by its hash, nothing else), no script, no font, no
/// request to anywhere.
enum PageLayout {
    /// The style sheet of every page, allowed by its hash in `Content-Security-Policy`.
    static let css = """
        body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1c2430;background:#f6f7f9}
        header{background:#1c2430;color:#fff;padding:10px 24px}header a{color:#fff;text-decoration:none;font-weight:600}
        main{padding:12px 24px;max-width:1200px}h1{font-size:20px;margin:8px 0}h2{font-size:16px;margin:20px 0 6px}
        section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:8px 14px;margin:10px 0}
        table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:3px 8px;border-bottom:1px solid #eef0f3;
        vertical-align:top}th{font-weight:600;color:#4a5568}code,.mono{font-family:ui-monospace,monospace;
        font-size:12px;overflow-wrap:anywhere}.banner{padding:10px 14px;border-radius:6px;margin:10px 0;font-weight:600}
        .danger{background:#fde8e8;border:2px solid #c53030;color:#742a2a}.warn{background:#fff8e1;
        border:2px solid #b7791f;color:#744210}.ok{color:#276749}.bad{color:#c53030;font-weight:600}
        .badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;font-weight:600}
        .trusted{background:#c6f6d5;color:#22543d}.untrusted{background:#edf2f7;color:#4a5568}
        .yanked{background:#fed7d7;color:#742a2a}.notice{background:#fefcbf;color:#744210}
        .pair{display:flex;gap:12px;flex-wrap:wrap}.pair>div{flex:1 1 400px;min-width:0}
        code.path{overflow-wrap:break-word}meter{width:320px;height:14px}form input[type=search]{width:420px;padding:4px}.muted{color:#718096}
        nav.pages a,nav.pages span{margin-right:10px}svg{max-width:100%;height:auto}
        """

    static let cssHash = Data(SHA256.hash(data: Array(css.utf8))).base64EncodedString()

    /// No script, no font, no frame, no connection: only the inline style sheet above, by hash; forms only to this
    /// gateway.
    static let contentSecurityPolicy =
        "default-src 'none'; style-src 'sha256-\(cssHash)'; img-src 'self' data:; form-action 'self'; "
        + "base-uri 'none'; frame-ancestors 'none'"

    static func document(title: String, body: HTML) -> HTML {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
        <meta name="referrer" content="no-referrer"><title>\(title)</title><style>\(HTML(markup: css))</style></head>
        <body><header><a href="/">Alexandria node</a></header><main>
        \(body)
        </main></body></html>
        """
    }

    /// A page response: HTML, the policy above, never cached (it shows live state), and how long rendering took as
    /// `Server-Timing` (milliseconds).
    static func response(
        _ document: HTML, status: HTTPResponseStatus = .ok, renderSeconds: Double
    ) -> GatewayResponse {
        let headers: HTTPHeaders = [
            "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": contentSecurityPolicy,
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
            "Server-Timing": "render;dur=" + String(format: "%.2f", renderSeconds * 1000),
        ]
        return GatewayResponse(status: status, headers: headers, body: .bytes(Array(document.markup.utf8)))
    }

    /// Bytes as the CLI shows them (KiB, MiB, … with one decimal).
    static func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: "%.1f", value) + " " + units[unit]
    }

    /// A duration as `3d 4h`, `5m 10s`, `12s`.
    static func duration(_ seconds: Double) -> String {
        let s = Int(max(0, seconds))
        if s >= 86400 { return "\(s / 86400)d \(s % 86400 / 3600)h" }
        if s >= 3600 { return "\(s / 3600)h \(s % 3600 / 60)m" }
        if s >= 60 { return "\(s / 60)m \(s % 60)s" }
        return "\(s)s"
    }
}
