import Crypto
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Named limits on what comes back from an S3 endpoint, and on how hard we retry.
public enum ObjectStoreLimits {
    /// Largest XML response we parse (a 1000-key listing is about 300 KiB).
    public static let maxXMLBytes = 16 << 20
    /// Largest error body we keep for a message.
    public static let maxErrorBytes = 64 << 10
    /// Keys per DeleteObjects request (the S3 maximum).
    public static let maxDeleteKeys = 1000
    /// Pages per listing before we stop and report (10^7 keys at 1000 a page).
    public static let maxListPages = 10_000
    /// S3's smallest multipart part, except the last.
    public static let minPartBytes = 5 << 20
    /// S3's most parts in one multipart upload.
    public static let maxParts = 10_000
}

/// How often and how patiently a request is retried: on connection failures and on 500, 502, 503 and 504, with
/// exponential backoff and full jitter, `maxAttempts` attempts in all.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelayMilliseconds: Int
    public var maxDelayMilliseconds: Int

    public init(maxAttempts: Int = 5, baseDelayMilliseconds: Int = 100, maxDelayMilliseconds: Int = 2000) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelayMilliseconds = baseDelayMilliseconds
        self.maxDelayMilliseconds = maxDelayMilliseconds
    }

    /// The delay before attempt `attempt + 1` (attempt counts from 1), full jitter over the capped exponential.
    func delayMilliseconds(after attempt: Int) -> Int {
        let cap = min(maxDelayMilliseconds, baseDelayMilliseconds << min(attempt - 1, 16))
        return Int.random(in: cap / 2...max(cap / 2, cap))
    }

    static func isRetryable(status: Int) -> Bool { [500, 502, 503, 504].contains(status) }
}

/// One object as a listing or HEAD reports it.
public struct ObjectInfo: Sendable, Equatable {
    public var key: String
    public var size: UInt64
    public var etag: String
}

/// One unfinished multipart upload as ListMultipartUploads reports it.
public struct MultipartUploadInfo: Sendable, Equatable {
    public var key: String
    public var uploadId: String
    /// ISO 8601 as the engine wrote it, e.g. `2026-11-29T23:05:09.000Z`.
    public var initiated: String
}

/// A small S3 client: path-style addressing, SigV4 header signing with the payload's SHA-256, the operations the
/// object store backend needs, retries with backoff, and an error per failure that names what failed.
///
/// Every request counts into `requestCount`, so figures and tests can report requests per GiB.
public final class S3Client: Sendable {
    public let endpoint: String
    public let region: String
    let signer: SigV4Signer
    let transport: HTTPTransport
    let hostHeader: String
    public let retry: RetryPolicy
    let logger: Logger
    let counter = RequestCounter()

    /// - Parameter endpoint: `http://host[:port]` (no path; TLS is not built in, see Protocol/store-s3.md).
    public init(
        endpoint: String, region: String, credentials: S3Credentials, retry: RetryPolicy = RetryPolicy(),
        idleTimeoutSeconds: Int64 = 60, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "alexandria.s3")
    ) throws {
        var rest = Substring(endpoint)
        guard rest.hasPrefix("http://") else {
            throw ObjectStoreError(
                .configuration,
                "S3 endpoint \(endpoint) must start with http:// (https needs a TLS proxy in front; see "
                    + "Protocol/store-s3.md)")
        }
        rest = rest.dropFirst(7)
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/") else {
            throw ObjectStoreError(.configuration, "S3 endpoint \(endpoint) must be http://host[:port] with no path")
        }
        var host = String(rest)
        var port = 80
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw ObjectStoreError(.configuration, "S3 endpoint \(endpoint) has a bad port")
            }
            port = p
            host = String(rest[..<colon])
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.endpoint = "http://" + rest
        self.region = region
        self.hostHeader = String(rest)
        self.signer = SigV4Signer(accessKey: credentials.accessKey, secretKey: credentials.secretKey, region: region)
        self.transport = HTTPTransport(
            host: host, port: port, group: group, idleTimeout: .seconds(idleTimeoutSeconds),
            connectTimeout: .seconds(5))
        self.retry = retry
        self.logger = logger
    }

    /// Requests sent so far (each attempt counts).
    public var requestCount: Int { counter.value }

    // MARK: - Objects

    /// PUT of one object in one request. Returns its ETag (without quotes). Content-MD5 is sent, so the engine
    /// rejects bytes damaged on the way.
    @discardableResult
    public func putObject(bucket: String, key: String, body: ByteBuffer) async throws -> String {
        let r = try await send(
            "PUT", bucket: bucket, key: key, headers: [("content-md5", Self.base64MD5(body))], body: body,
            expect: [200])
        return Self.etag(r.headers)
    }

    /// GET of a whole object, or of `range` (half-open, bytes) of it, collected in memory up to `maxBytes`.
    public func getObject(
        bucket: String, key: String, range: Range<UInt64>? = nil, maxBytes: Int
    ) async throws
        -> ByteBuffer
    {
        var headers: [(String, String)] = []
        if let range {
            guard !range.isEmpty else { return ByteBuffer() }
            headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"))
        }
        let r = try await send(
            "GET", bucket: bucket, key: key, headers: headers, expect: range == nil ? [200] : [206],
            maxBody: maxBytes)
        if let range, r.body.readableBytes != range.count {
            throw ObjectStoreError(
                .badResponse,
                "GET \(bucket)/\(key) bytes \(range): the engine sent \(r.body.readableBytes) bytes, not \(range.count)"
            )
        }
        return r.body
    }

    /// GET of a whole object, or of `range` of it, handed to `sink` piece by piece as it arrives. Retried only
    /// while no byte has reached `sink`. Returns the number of bytes delivered.
    @discardableResult
    public func getObject(
        bucket: String, key: String, range: Range<UInt64>? = nil,
        sink: @escaping @Sendable (ByteBuffer) async throws -> Void
    ) async throws -> UInt64 {
        var headers: [(String, String)] = []
        if let range { headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")) }
        let delivered = ByteCounter()
        _ = try await send(
            "GET", bucket: bucket, key: key, headers: headers, expect: range == nil ? [200] : [206],
            maxBody: ObjectStoreLimits.maxErrorBytes,
            sink: { piece in
                delivered.add(piece.readableBytes)
                try await sink(piece)
            }, retryWhile: { delivered.value == 0 })
        if let range, delivered.value != range.count {
            throw ObjectStoreError(
                .badResponse, "GET \(bucket)/\(key) bytes \(range): the engine sent \(delivered.value) bytes")
        }
        return UInt64(delivered.value)
    }

    /// HEAD: the object's size and ETag, or nil if there is no such object.
    public func headObject(bucket: String, key: String) async throws -> ObjectInfo? {
        let r = try await send("HEAD", bucket: bucket, key: key, expect: [200, 404])
        if r.status == 404 { return nil }
        guard let length = r.headers.first(name: "content-length").flatMap(UInt64.init) else {
            throw ObjectStoreError(.badResponse, "HEAD \(bucket)/\(key): no Content-Length")
        }
        return ObjectInfo(key: key, size: length, etag: Self.etag(r.headers))
    }

    /// DELETE of one object; deleting a missing object succeeds (S3 answers 204 either way).
    public func deleteObject(bucket: String, key: String) async throws {
        _ = try await send("DELETE", bucket: bucket, key: key, expect: [204, 200, 404])
    }

    /// DeleteObjects (quiet mode) in batches of 1000, with the Content-MD5 the engine requires. Throws if the
    /// engine reports an error for any key.
    public func deleteObjects(bucket: String, keys: [String]) async throws {
        var start = 0
        while start < keys.count {
            let batch = keys[start..<min(keys.count, start + ObjectStoreLimits.maxDeleteKeys)]
            start += batch.count
            var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>"
            for key in batch { xml += "<Object><Key>\(MiniXML.escape(key))</Key></Object>" }
            xml += "</Delete>"
            let body = ByteBuffer(string: xml)
            let r = try await send(
                "POST", bucket: bucket, key: nil, query: [("delete", "")],
                headers: [("content-md5", Self.base64MD5(body)), ("content-type", "application/xml")], body: body,
                expect: [200], maxBody: ObjectStoreLimits.maxXMLBytes)
            let text = Substring(String(buffer: r.body))
            let errors = MiniXML.blocks("Error", in: text)
            if let first = errors.first {
                let key = MiniXML.text("Key", in: first) ?? "?"
                let code = MiniXML.text("Code", in: first) ?? "?"
                throw ObjectStoreError(
                    .rejected, "DeleteObjects in \(bucket): \(errors.count) keys not deleted, first \(key): \(code)")
            }
        }
    }

    /// One page of ListObjectsV2.
    public struct ListPage: Sendable {
        public var objects: [ObjectInfo]
        public var commonPrefixes: [String]
        public var continuationToken: String?
    }

    public func listObjectsPage(
        bucket: String, prefix: String, delimiter: String? = nil, continuationToken: String? = nil,
        maxKeys: Int = 1000
    ) async throws -> ListPage {
        var query: [(String, String)] = [("list-type", "2"), ("prefix", prefix), ("max-keys", String(maxKeys))]
        if let delimiter { query.append(("delimiter", delimiter)) }
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        let r = try await send(
            "GET", bucket: bucket, key: nil, query: query, expect: [200], maxBody: ObjectStoreLimits.maxXMLBytes)
        let text = Substring(String(buffer: r.body))
        guard text.contains("<ListBucketResult") else {
            throw ObjectStoreError(.badResponse, "ListObjectsV2 on \(bucket): not a ListBucketResult")
        }
        var objects: [ObjectInfo] = []
        for block in MiniXML.blocks("Contents", in: text) {
            guard let key = MiniXML.text("Key", in: block),
                let size = MiniXML.text("Size", in: block).flatMap(UInt64.init)
            else { throw ObjectStoreError(.badResponse, "ListObjectsV2 on \(bucket): an entry without Key or Size") }
            objects.append(ObjectInfo(key: key, size: size, etag: Self.unquote(MiniXML.text("ETag", in: block) ?? "")))
        }
        let prefixes = MiniXML.blocks("CommonPrefixes", in: text).compactMap { MiniXML.text("Prefix", in: $0) }
        let truncated = MiniXML.text("IsTruncated", in: text) == "true"
        let token = truncated ? MiniXML.text("NextContinuationToken", in: text) : nil
        if truncated && token == nil {
            throw ObjectStoreError(.badResponse, "ListObjectsV2 on \(bucket): truncated without a continuation token")
        }
        return ListPage(objects: objects, commonPrefixes: prefixes, continuationToken: token)
    }

    /// Every object under `prefix`, following continuation tokens.
    public func listObjects(bucket: String, prefix: String) async throws -> [ObjectInfo] {
        var all: [ObjectInfo] = []
        var token: String?
        for _ in 0..<ObjectStoreLimits.maxListPages {
            let page = try await listObjectsPage(bucket: bucket, prefix: prefix, continuationToken: token)
            all += page.objects
            guard let next = page.continuationToken else { return all }
            token = next
        }
        throw ObjectStoreError(
            .limitExceeded, "listing \(bucket)/\(prefix) passed \(ObjectStoreLimits.maxListPages) pages")
    }

    // MARK: - Multipart uploads

    public func createMultipartUpload(bucket: String, key: String) async throws -> String {
        let r = try await send(
            "POST", bucket: bucket, key: key, query: [("uploads", "")], expect: [200],
            maxBody: ObjectStoreLimits.maxXMLBytes)
        guard let id = MiniXML.text("UploadId", in: Substring(String(buffer: r.body))), !id.isEmpty else {
            throw ObjectStoreError(.badResponse, "CreateMultipartUpload \(bucket)/\(key): no UploadId")
        }
        return id
    }

    /// Uploads part `number` (1...10000) and returns its ETag. Content-MD5 is sent and the returned ETag is
    /// checked against it, so a part damaged on the way fails here rather than in the completed object.
    public func uploadPart(
        bucket: String, key: String, uploadId: String, number: Int, body: ByteBuffer
    )
        async throws -> String
    {
        let md5 = Self.md5(body)
        let r = try await send(
            "PUT", bucket: bucket, key: key, query: [("partNumber", String(number)), ("uploadId", uploadId)],
            headers: [("content-md5", Self.base64(Array(md5)))], body: body, expect: [200])
        let etag = Self.etag(r.headers)
        guard etag == SigV4Signer.hex(md5) else {
            throw ObjectStoreError(
                .integrity, "UploadPart \(number) of \(bucket)/\(key): the engine's ETag \(etag) is not the part's MD5")
        }
        return etag
    }

    /// Completes an upload from its parts' ETags, in part order. Returns the object's ETag.
    @discardableResult
    public func completeMultipartUpload(
        bucket: String, key: String, uploadId: String, etags: [String]
    )
        async throws -> String
    {
        var xml = "<CompleteMultipartUpload>"
        for (i, etag) in etags.enumerated() {
            xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\"\(etag)\"</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let r = try await send(
            "POST", bucket: bucket, key: key, query: [("uploadId", uploadId)],
            headers: [("content-type", "application/xml")], body: ByteBuffer(string: xml), expect: [200],
            maxBody: ObjectStoreLimits.maxXMLBytes)
        // S3 may answer 200 with an <Error> body when completion fails late.
        let text = Substring(String(buffer: r.body))
        if text.contains("<Error>") {
            throw Self.error(
                status: 200, body: r.body, what: "CompleteMultipartUpload \(bucket)/\(key)", bucket: bucket,
                endpoint: endpoint)
        }
        return Self.unquote(MiniXML.text("ETag", in: text) ?? "")
    }

    /// Aborts an upload; an upload already gone (404 NoSuchUpload) counts as aborted.
    public func abortMultipartUpload(bucket: String, key: String, uploadId: String) async throws {
        do {
            _ = try await send("DELETE", bucket: bucket, key: key, query: [("uploadId", uploadId)], expect: [204, 200])
        } catch let error as ObjectStoreError where error.code == .noSuchUpload || error.code == .notFound {
            return
        }
    }

    /// Every unfinished multipart upload under `prefix`, following the key and upload-id markers.
    public func listMultipartUploads(bucket: String, prefix: String) async throws -> [MultipartUploadInfo] {
        var all: [MultipartUploadInfo] = []
        var keyMarker: String?
        var idMarker: String?
        for _ in 0..<ObjectStoreLimits.maxListPages {
            var query: [(String, String)] = [("uploads", ""), ("prefix", prefix)]
            if let keyMarker { query.append(("key-marker", keyMarker)) }
            if let idMarker { query.append(("upload-id-marker", idMarker)) }
            let r = try await send(
                "GET", bucket: bucket, key: nil, query: query, expect: [200], maxBody: ObjectStoreLimits.maxXMLBytes)
            let text = Substring(String(buffer: r.body))
            for block in MiniXML.blocks("Upload", in: text) {
                guard let key = MiniXML.text("Key", in: block), let id = MiniXML.text("UploadId", in: block) else {
                    throw ObjectStoreError(.badResponse, "ListMultipartUploads on \(bucket): an entry without Key")
                }
                all.append(
                    MultipartUploadInfo(key: key, uploadId: id, initiated: MiniXML.text("Initiated", in: block) ?? ""))
            }
            guard MiniXML.text("IsTruncated", in: text) == "true" else { return all }
            keyMarker = MiniXML.text("NextKeyMarker", in: text)
            idMarker = MiniXML.text("NextUploadIdMarker", in: text)
            guard keyMarker != nil else {
                throw ObjectStoreError(.badResponse, "ListMultipartUploads on \(bucket): truncated without a marker")
            }
        }
        throw ObjectStoreError(
            .limitExceeded, "listing uploads in \(bucket) passed \(ObjectStoreLimits.maxListPages) pages")
    }

    // MARK: - Buckets

    /// Creates `bucket`; one that already exists and is ours counts as created.
    public func createBucket(_ bucket: String) async throws {
        do {
            _ = try await send("PUT", bucket: bucket, key: nil, expect: [200])
        } catch let error as ObjectStoreError where error.message.contains("BucketAlreadyOwnedByYou") {
            return
        }
    }

    /// HEAD of the bucket: throws `noSuchBucket`, `authentication` or `unreachable` with a clear message.
    public func checkBucket(_ bucket: String) async throws {
        let r = try await send("HEAD", bucket: bucket, key: nil, expect: [200, 403, 404])
        if r.status == 404 {
            throw ObjectStoreError(
                .noSuchBucket, "bucket \(bucket) does not exist at \(endpoint) (create it first)", status: 404)
        }
        if r.status == 403 {
            throw ObjectStoreError(
                .authentication,
                "\(endpoint) refused access to bucket \(bucket) (HTTP 403): check the access key and secret "
                    + "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the region \(region)", status: 403)
        }
    }

    public func deleteBucket(_ bucket: String) async throws {
        _ = try await send("DELETE", bucket: bucket, key: nil, expect: [204, 200])
    }

    // MARK: - The request loop

    func send(
        _ method: String, bucket: String, key: String?, query: [(String, String)] = [],
        headers extra: [(String, String)] = [], body: ByteBuffer? = nil, expect: Set<Int>,
        maxBody: Int = ObjectStoreLimits.maxErrorBytes,
        sink: (@Sendable (ByteBuffer) async throws -> Void)? = nil,
        retryWhile: @Sendable () -> Bool = { true }
    ) async throws -> HTTPTransport.Response {
        let path = S3Path.encode(bucket: bucket, key: key)
        let what = "\(method) \(bucket)\(key.map { "/" + $0 } ?? "")"
        let payloadHash = Self.sha256Hex(body ?? ByteBuffer())
        var uri = path
        if !query.isEmpty {
            uri +=
                "?"
                + query.map {
                    S3Path.percentEncode($0.0, keepSlash: false) + "=" + S3Path.percentEncode($0.1, keepSlash: false)
                }
                .joined(separator: "&")
        }
        var attempt = 0
        while true {
            attempt += 1
            var headers: [(String, String)] = [("host", hostHeader), ("x-amz-content-sha256", payloadHash)]
            headers += extra
            if let body { headers.append(("content-length", String(body.readableBytes))) }
            let amzDate = SigV4Signer.amzDate(unixSeconds: Self.nowSeconds())
            headers.append(("x-amz-date", amzDate))
            let signature = signer.sign(
                method: method, path: path, query: query, headers: headers, payloadSHA256: payloadHash,
                amzDate: amzDate)
            var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: uri)
            for (name, value) in headers { head.headers.add(name: name, value: value) }
            head.headers.add(name: "authorization", value: signature.authorization)
            if body == nil && (method == "PUT" || method == "POST") {
                head.headers.add(name: "content-length", value: "0")
            }
            counter.add()
            let failure: ObjectStoreError
            do {
                let r = try await transport.exchange(head: head, body: body, maxBody: maxBody, sink: sink)
                if expect.contains(r.status) { return r }
                let error = Self.error(status: r.status, body: r.body, what: what, bucket: bucket, endpoint: endpoint)
                guard RetryPolicy.isRetryable(status: r.status), error.code != .storageFull else { throw error }
                failure = error
            } catch let error as HTTPTransport.ConnectionFailure {
                failure = ObjectStoreError(
                    .unreachable,
                    "\(what): the S3 endpoint \(endpoint) is unreachable (\(error.reason)); is the engine running?")
            }
            guard attempt < retry.maxAttempts, retryWhile() else {
                if attempt > 1 {
                    throw ObjectStoreError(
                        failure.code, failure.message + " (after \(attempt) attempts)", status: failure.status)
                }
                throw failure
            }
            let delay = retry.delayMilliseconds(after: attempt)
            logger.debug(
                "retrying S3 request",
                metadata: [
                    "s3.request": "\(what)", "s3.attempt": "\(attempt)", "s3.delay_ms": "\(delay)",
                    "s3.error": "\(failure.message)",
                ])
            try await Task.sleep(nanoseconds: UInt64(delay) * 1_000_000)
        }
    }

    /// Maps an S3 error response to an error with a code and a message that says what to do.
    static func error(status: Int, body: ByteBuffer, what: String, bucket: String, endpoint: String) -> ObjectStoreError
    {
        let text = Substring(String(buffer: body))
        let code = MiniXML.text("Code", in: text) ?? ""
        let detail = MiniXML.text("Message", in: text).map { ": \($0)" } ?? ""
        let tag = code.isEmpty ? "HTTP \(status)" : "HTTP \(status) \(code)"
        switch (status, code) {
        case (_, "SignatureDoesNotMatch"):
            return ObjectStoreError(
                .authentication,
                "\(what): \(endpoint) rejected our signature (\(tag)): the secret key (AWS_SECRET_ACCESS_KEY) is "
                    + "wrong for this access key, or the region does not match the engine's", status: status)
        case (_, "InvalidAccessKeyId"):
            return ObjectStoreError(
                .authentication, "\(what): \(endpoint) does not know the access key (\(tag)); check AWS_ACCESS_KEY_ID",
                status: status)
        case (403, _):
            return ObjectStoreError(
                .authentication, "\(what): \(endpoint) refused access (\(tag)\(detail)); check the credentials",
                status: status)
        case (_, "NoSuchBucket"):
            return ObjectStoreError(
                .noSuchBucket, "bucket \(bucket) does not exist at \(endpoint) (\(what), \(tag)); create it first",
                status: status)
        case (_, "NoSuchUpload"):
            return ObjectStoreError(.noSuchUpload, "\(what): the multipart upload is gone (\(tag))", status: status)
        case (404, _):
            return ObjectStoreError(.notFound, "\(what): no such object (\(tag))", status: status)
        case (416, _):
            return ObjectStoreError(.rangeNotSatisfiable, "\(what): range outside the object (\(tag))", status: status)
        case (507, _), (_, "InsufficientStorage"), (_, "EntityTooLarge"):
            return ObjectStoreError(
                .storageFull, "\(what): the object store at \(endpoint) is out of space (\(tag)\(detail))",
                status: status)
        case (500..<600, _):
            return ObjectStoreError(
                .unavailable,
                "\(what): the object store at \(endpoint) failed (\(tag)\(detail)); it may be overloaded, out of "
                    + "space on its devices (Swift answers a full device with 503) or have too few devices up",
                status: status)
        default:
            return ObjectStoreError(.rejected, "\(what): \(endpoint) answered \(tag)\(detail)", status: status)
        }
    }

    // MARK: - Helpers

    static func etag(_ headers: HTTPHeaders) -> String { unquote(headers.first(name: "etag") ?? "") }

    static func unquote(_ s: String) -> String {
        var t = Substring(s)
        if t.hasPrefix("\"") { t = t.dropFirst() }
        if t.hasSuffix("\"") { t = t.dropLast() }
        return String(t)
    }

    static func base64MD5(_ body: ByteBuffer) -> String { base64(Array(Self.md5(body))) }

    static func md5(_ body: ByteBuffer) -> Insecure.MD5.Digest {
        var h = Insecure.MD5()
        body.withUnsafeReadableBytes { h.update(bufferPointer: $0) }
        return h.finalize()
    }

    static func sha256Hex(_ body: ByteBuffer) -> String {
        var h = SHA256()
        body.withUnsafeReadableBytes { h.update(bufferPointer: $0) }
        return SigV4Signer.hex(h.finalize())
    }

    static func base64(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let b0 = Int(bytes[i])
            let b1 = i + 1 < bytes.count ? Int(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? Int(bytes[i + 2]) : 0
            out.append(table[b0 >> 2])
            out.append(table[(b0 & 3) << 4 | b1 >> 4])
            out.append(i + 1 < bytes.count ? table[(b1 & 15) << 2 | b2 >> 6] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? table[b2 & 63] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func nowSeconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }
}

/// A thread-safe counter (requests, bytes).
final class RequestCounter: @unchecked Sendable {
    private let lock = NIOLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

final class ByteCounter: @unchecked Sendable {
    private let lock = NIOLock()
    private var count = 0
    func add(_ n: Int) { lock.withLock { count += n } }
    var value: Int { lock.withLock { count } }
}
