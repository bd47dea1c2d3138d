import AlexandriaCore
import NIOHTTP1

/// One HTTP request as the routes see it: the method is GET or HEAD (anything else is answered `405` before any
/// route runs), the target is already decoded and checked.
public struct GatewayRequest: Sendable {
    public let method: HTTPMethod
    public let uri: String
    public let target: RequestTarget
    public let headers: HTTPHeaders

    public var isHead: Bool { method == .HEAD }
}

/// A response: status, headers, and where the body comes from.
public struct GatewayResponse: Sendable {
    public enum Body: Sendable {
        case empty
        case bytes([UInt8])
        /// `range` of a stored file, read chunk by chunk, each chunk verified against its id before it is sent.
        case file(FileRecipe, range: Range<UInt64>)
        /// `range` of a file being pulled through from peers, sent in order as its verified chunks reach the store.
        case pull(PullJob, range: Range<UInt64>)
    }

    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: Body

    public init(status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:], body: Body = .empty) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The number of body bytes, sent as `Content-Length` (for `HEAD` too).
    public var contentLength: UInt64 {
        switch body {
        case .empty: 0
        case .bytes(let b): UInt64(b.count)
        case .file(_, let range), .pull(_, let range): range.upperBound - range.lowerBound
        }
    }

    /// A JSON body (`Content-Type: application/json`).
    public static func json(
        _ value: GatewayJSON, status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:]
    )
        -> GatewayResponse
    {
        var h = headers
        h.replaceOrAdd(name: "Content-Type", value: "application/json")
        return GatewayResponse(status: status, headers: h, body: .bytes(Array(value.text.utf8)))
    }
}

/// A set of routes. The gateway asks each in turn, in the order of its table; the first non-nil response wins.
/// A route set that does not recognise the path returns nil, so new sets (`/metrics`, a status page) are added by
/// inserting them into `Gateway.routes` without touching the others.
public protocol GatewayRoutes: Sendable {
    func respond(to request: GatewayRequest) async throws -> GatewayResponse?
}

/// An error a route answers with: an HTTP status, the `X-Error-Code` the Hugging Face client maps to its exceptions
/// (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`, or a gateway code), and a message that is safe to show.
public struct GatewayError: Error, Sendable, CustomStringConvertible {
    public let status: HTTPResponseStatus
    public let code: String
    public let message: String
    /// Extra headers (e.g. `X-Repo-Commit` with `EntryNotFound`, `Content-Range` with `416`).
    public var headers: HTTPHeaders = [:]

    public init(_ status: HTTPResponseStatus, _ code: String, _ message: String, headers: HTTPHeaders = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    /// The response: the error headers, and a JSON body `{"error": message}` (empty for HEAD).
    public var response: GatewayResponse {
        var h = headers
        h.replaceOrAdd(name: "X-Error-Code", value: code)
        h.replaceOrAdd(name: "X-Error-Message", value: GatewayError.headerSafe(message))
        return .json(.object(["error": .string(message)]), status: status, headers: h)
    }

    /// A header value: printable ASCII only, at most 512 bytes (others become `?`).
    static func headerSafe(_ text: String) -> String {
        String(
            String.UnicodeScalarView(
                text.unicodeScalars.prefix(512).map { $0.value >= 0x20 && $0.value < 0x7f ? $0 : "?" }))
    }
}

/// A small JSON value for gateway responses, written deterministically (object members sorted by name, as the
/// canonical form in Protocol/manifest-v1.md), so identical answers are identical bytes on every node.
public indirect enum GatewayJSON: Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case string(String)
    case array([GatewayJSON])
    case object([String: GatewayJSON])

    public var text: String {
        var out = ""
        write(&out)
        return out
    }

    func write(_ out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let n): out += String(n)
        case .string(let s): Self.quote(s, &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(&out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, key) in members.keys.sorted(by: { $0.utf16.lexicographicallyPrecedes($1.utf16) }).enumerated() {
                if i > 0 { out += "," }
                Self.quote(key, &out)
                out += ":"
                members[key]!.write(&out)
            }
            out += "}"
        }
    }

    static func quote(_ s: String, _ out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            case "\u{0C}": out += "\\f"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
