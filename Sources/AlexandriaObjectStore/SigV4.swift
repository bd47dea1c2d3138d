import Crypto

/// AWS Signature Version 4 for S3 (header authentication, `AWS4-HMAC-SHA256`), as botocore's `S3SigV4Auth` does it.
///
/// The signature covers, byte for byte, the canonical request:
/// `METHOD \n path \n sorted query \n canonical headers \n \n signed header names \n payload SHA-256 hex`, where the
/// path is sent as is (S3 does not normalise or double-encode it), each query name and value is percent-encoded
/// (RFC 3986 unreserved characters stay) and the pairs are sorted, and every header given is signed: lowercase
/// name, value trimmed with inner runs of whitespace collapsed to one space, sorted by name. The payload hash is the
/// value sent in `x-amz-content-sha256`. Checked against vectors from botocore
/// (Protocol/test-vectors/s3-sigv4/vectors.json).
public struct SigV4Signer: Sendable {
    public let accessKey: String
    let secretKey: String
    public let region: String
    public let service: String

    public init(accessKey: String, secretKey: String, region: String, service: String = "s3") {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
        self.service = service
    }

    /// What a signature was computed over, for tests and for debugging a `SignatureDoesNotMatch`.
    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var authorization: String
    }

    /// Signs a request. `path` is the percent-encoded path as sent (see `S3Path.encode`); `query` holds decoded
    /// name/value pairs; `headers` must already contain `host` and `x-amz-content-sha256` (every header given is
    /// signed); `amzDate` is `YYYYMMDD'T'HHMMSS'Z'` in UTC and must also be sent as `x-amz-date`.
    public func sign(
        method: String, path: String, query: [(String, String)], headers: [(String, String)],
        payloadSHA256: String, amzDate: String
    ) -> Signature {
        var all = headers.map { (name: $0.0.lowercased(), value: Self.collapse($0.1)) }
        if !all.contains(where: { $0.name == "x-amz-date" }) { all.append((name: "x-amz-date", value: amzDate)) }
        // Repeated names join with a comma, in the order given (botocore does the same).
        var joined: [String: String] = [:]
        for (name, value) in all { joined[name] = joined[name].map { $0 + "," + value } ?? value }
        let names = joined.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(joined[$0]!)\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let canonicalRequest = [
            method.uppercased(), path, Self.canonicalQuery(query), canonicalHeaders, signedHeaders, payloadSHA256,
        ].joined(separator: "\n")
        let day = String(amzDate.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            "AWS4-HMAC-SHA256", amzDate, scope, Self.hex(SHA256.hash(data: Array(canonicalRequest.utf8))),
        ].joined(separator: "\n")
        var key = SymmetricKey(data: Array("AWS4\(secretKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, authorization: authorization)
    }

    /// `name=value` pairs, each part percent-encoded, sorted by name then value, joined with `&`.
    static func canonicalQuery(_ query: [(String, String)]) -> String {
        query.map { (S3Path.percentEncode($0.0, keepSlash: false), S3Path.percentEncode($0.1, keepSlash: false)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    static func collapse(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(separator: " ")
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `YYYYMMDD'T'HHMMSS'Z'` for seconds since the Unix epoch (UTC), without Foundation's formatters.
    public static func amzDate(unixSeconds: Int64) -> String {
        let days = unixSeconds >= 0 ? unixSeconds / 86400 : (unixSeconds - 86399) / 86400
        let secs = unixSeconds - days * 86400
        // Howard Hinnant's civil_from_days.
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return pad(y, 4) + pad(m, 2) + pad(d, 2) + "T" + pad(secs / 3600, 2) + pad(secs / 60 % 60, 2)
            + pad(secs % 60, 2) + "Z"
    }
}

/// Path-style S3 paths: `/bucket/key`, percent-encoded the way SigV4 signs them.
public enum S3Path {
    /// `/bucket` or `/bucket/key` with every byte outside RFC 3986's unreserved set (and `/` in the key) as `%XX`.
    public static func encode(bucket: String, key: String?) -> String {
        var path = "/" + percentEncode(bucket, keepSlash: false)
        if let key { path += "/" + percentEncode(key, keepSlash: true) }
        return path
    }

    static func percentEncode(_ s: String, keepSlash: Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                out.append(b)
            case UInt8(ascii: "/") where keepSlash:
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
