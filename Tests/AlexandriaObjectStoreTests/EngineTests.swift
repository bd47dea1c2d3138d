import Crypto
import Foundation
import NIOCore
import Testing

@testable import AlexandriaObjectStore

/// The engine the integration tests run against: S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
/// S3_REGION from the environment (Tests/s3.sh starts OpenStack Swift and sets them). Without S3_ENDPOINT these
/// suites are reported as skipped.
enum Engine {
    static let environment = ProcessInfo.processInfo.environment
    static var available: Bool { environment["S3_ENDPOINT"] != nil }
    static var endpoint: String { environment["S3_ENDPOINT"] ?? "http://127.0.0.1:1" }
    static var region: String { environment["S3_REGION"] ?? "us-east-1" }

    static func client(
        secret: String? = nil, accessKey: String? = nil, retry: RetryPolicy = RetryPolicy()
    )
        throws -> S3Client
    {
        let creds = try S3Credentials.resolve(environment: environment, file: nil)
        return try S3Client(
            endpoint: endpoint, region: region,
            credentials: S3Credentials(
                accessKey: accessKey ?? creds.accessKey, secretKey: secret ?? creds.secretKey),
            retry: retry)
    }

    /// A fresh bucket for one test, emptied and deleted by `cleanup`.
    static func bucket(_ client: S3Client) async throws -> String {
        let name = "alx-test-\(UInt64.random(in: 0..<UInt64.max) & 0xFFFF_FFFF_FFFF)"
        try await client.createBucket(name)
        return name
    }

    static func cleanup(_ client: S3Client, _ bucket: String) async {
        if let uploads = try? await client.listMultipartUploads(bucket: bucket, prefix: "") {
            for u in uploads {
                try? await client.abortMultipartUpload(bucket: bucket, key: u.key, uploadId: u.uploadId)
            }
        }
        if let objects = try? await client.listObjects(bucket: bucket, prefix: ""), !objects.isEmpty {
            try? await client.deleteObjects(bucket: bucket, keys: objects.map(\.key))
        }
        try? await client.deleteBucket(bucket)
    }

    /// Deterministic pseudo-random bytes (xorshift64, eight bytes a step).
    static func bytes(_ count: Int, seed: UInt8 = 1) -> ByteBuffer {
        var b = ByteBuffer()
        var x = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1
        b.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { p in
            var i = 0
            while i < count {
                x ^= x << 13
                x ^= x >> 7
                x ^= x << 17
                withUnsafeBytes(of: x) { w in
                    for j in 0..<min(8, count - i) { p[i + j] = w[j] }
                }
                i += 8
            }
            return count
        }
        return b
    }
}

@Suite("S3 client against a real engine (S3_ENDPOINT)", .enabled(if: Engine.available), .serialized)
struct EngineTests {
    @Test("PUT, GET whole and ranged, HEAD, DELETE; a key that needs encoding")
    func objects() async throws {
        let s3 = try Engine.client()
        let bucket = try await Engine.bucket(s3)
        do {
            let data = Engine.bytes(300_000)
            for key in ["plain/object.bin", "dir one/naïve+plus=eq&amp;~tilde*star(paren).bin"] {
                let etag = try await s3.putObject(bucket: bucket, key: key, body: data)
                #expect(etag == SigV4Signer.hex(S3Client.md5(data)))
                #expect(try await s3.getObject(bucket: bucket, key: key, maxBytes: 1 << 20) == data)
                let part = try await s3.getObject(bucket: bucket, key: key, range: 1000..<1100, maxBytes: 1 << 20)
                #expect(part == data.getSlice(at: 1000, length: 100))
                let tail = try await s3.getObject(bucket: bucket, key: key, range: 299_990..<300_000, maxBytes: 100)
                #expect(tail == data.getSlice(at: 299_990, length: 10))
                let head = try await s3.headObject(bucket: bucket, key: key)
                #expect(head?.size == 300_000 && head?.etag == etag)
                let streamed = Collected()
                let n = try await s3.getObject(bucket: bucket, key: key, range: 5..<250_005) { streamed.append($0) }
                #expect(n == 250_000 && streamed.buffer == data.getSlice(at: 5, length: 250_000))
            }
            await #expect(throws: ObjectStoreError(.rangeNotSatisfiable, "")) {
                try await s3.getObject(bucket: bucket, key: "plain/object.bin", range: 400_000..<400_010, maxBytes: 10)
            }
            await #expect(throws: ObjectStoreError(.limitExceeded, "")) {
                try await s3.getObject(bucket: bucket, key: "plain/object.bin", maxBytes: 1000)
            }
            await #expect(throws: ObjectStoreError(.notFound, "")) {
                try await s3.getObject(bucket: bucket, key: "absent", maxBytes: 10)
            }
            #expect(try await s3.headObject(bucket: bucket, key: "absent") == nil)
            try await s3.deleteObject(bucket: bucket, key: "plain/object.bin")
            try await s3.deleteObject(bucket: bucket, key: "plain/object.bin")
            #expect(try await s3.headObject(bucket: bucket, key: "plain/object.bin") == nil)
        } catch {
            await Engine.cleanup(s3, bucket)
            throw error
        }
        await Engine.cleanup(s3, bucket)
    }

    @Test("ListObjectsV2 pages through continuation tokens; DeleteObjects with Content-MD5")
    func listing() async throws {
        let s3 = try Engine.client()
        let bucket = try await Engine.bucket(s3)
        do {
            let keys = (0..<7).map { "p/\($0 % 2 == 0 ? "a" : "b")/k\($0)" } + ["other/x"]
            for key in keys { try await s3.putObject(bucket: bucket, key: key, body: ByteBuffer(string: key)) }
            var seen: [String] = []
            var token: String?
            var pages = 0
            repeat {
                let page = try await s3.listObjectsPage(
                    bucket: bucket, prefix: "p/", continuationToken: token, maxKeys: 2)
                seen += page.objects.map(\.key)
                token = page.continuationToken
                pages += 1
            } while token != nil
            #expect(pages == 4)
            #expect(seen == keys.filter { $0.hasPrefix("p/") }.sorted())
            let dirs = try await s3.listObjectsPage(bucket: bucket, prefix: "p/", delimiter: "/")
            #expect(dirs.commonPrefixes == ["p/a/", "p/b/"] && dirs.objects.isEmpty)
            #expect(try await s3.listObjects(bucket: bucket, prefix: "").count == 8)
            try await s3.deleteObjects(bucket: bucket, keys: keys + ["never-existed"])
            #expect(try await s3.listObjects(bucket: bucket, prefix: "").isEmpty)
        } catch {
            await Engine.cleanup(s3, bucket)
            throw error
        }
        await Engine.cleanup(s3, bucket)
    }

    @Test("multipart: parts, complete, ranged read across a part boundary; list and abort stale uploads")
    func multipart() async throws {
        let s3 = try Engine.client()
        let bucket = try await Engine.bucket(s3)
        do {
            let part1 = Engine.bytes(ObjectStoreLimits.minPartBytes, seed: 2)
            let part2 = Engine.bytes(1234, seed: 3)
            let id = try await s3.createMultipartUpload(bucket: bucket, key: "packs/p1")
            let e1 = try await s3.uploadPart(bucket: bucket, key: "packs/p1", uploadId: id, number: 1, body: part1)
            let e2 = try await s3.uploadPart(bucket: bucket, key: "packs/p1", uploadId: id, number: 2, body: part2)
            let listed = try await s3.listMultipartUploads(bucket: bucket, prefix: "packs/")
            #expect(listed.map(\.uploadId) == [id] && listed.first?.initiated.isEmpty == false)
            #expect(try await s3.headObject(bucket: bucket, key: "packs/p1") == nil)
            let etag = try await s3.completeMultipartUpload(
                bucket: bucket, key: "packs/p1", uploadId: id, etags: [e1, e2])
            #expect(etag.hasSuffix("-2"))
            #expect(
                try await s3.headObject(bucket: bucket, key: "packs/p1")?.size == UInt64(part1.readableBytes + 1234))
            let at = UInt64(part1.readableBytes) - 10
            let across = try await s3.getObject(bucket: bucket, key: "packs/p1", range: at..<at + 20, maxBytes: 20)
            var expected = part1.getSlice(at: part1.readableBytes - 10, length: 10)!
            expected.writeImmutableBuffer(part2.getSlice(at: 0, length: 10)!)
            #expect(across == expected)
            #expect(try await s3.listMultipartUploads(bucket: bucket, prefix: "packs/").isEmpty)

            let stale = try await s3.createMultipartUpload(bucket: bucket, key: "packs/stale")
            _ = try await s3.uploadPart(bucket: bucket, key: "packs/stale", uploadId: stale, number: 1, body: part2)
            #expect(try await s3.listMultipartUploads(bucket: bucket, prefix: "").map(\.key) == ["packs/stale"])
            try await s3.abortMultipartUpload(bucket: bucket, key: "packs/stale", uploadId: stale)
            try await s3.abortMultipartUpload(bucket: bucket, key: "packs/stale", uploadId: stale)
            #expect(try await s3.listMultipartUploads(bucket: bucket, prefix: "").isEmpty)
            #expect(try await s3.headObject(bucket: bucket, key: "packs/stale") == nil)
            await #expect(throws: ObjectStoreError(.noSuchUpload, "")) {
                try await s3.uploadPart(bucket: bucket, key: "packs/stale", uploadId: stale, number: 2, body: part2)
            }
        } catch {
            await Engine.cleanup(s3, bucket)
            throw error
        }
        await Engine.cleanup(s3, bucket)
    }

    @Test("a wrong secret, an unknown access key and a missing bucket each get a clear error")
    func credentialsAndBuckets() async throws {
        let good = try Engine.client()
        let bucket = try await Engine.bucket(good)
        do {
            let wrong = try Engine.client(secret: "not-the-secret")
            let error = await #expect(throws: ObjectStoreError(.authentication, "")) {
                try await wrong.putObject(bucket: bucket, key: "k", body: ByteBuffer(string: "x"))
            }
            #expect(error?.message.contains("secret key") == true)
            #expect(wrong.requestCount == 1)  // a 403 is not retried
            await #expect(throws: ObjectStoreError(.authentication, "")) { try await wrong.checkBucket(bucket) }
            let unknown = try Engine.client(accessKey: "nobody:none")
            await #expect(throws: ObjectStoreError(.authentication, "")) {
                try await unknown.getObject(bucket: bucket, key: "k", maxBytes: 10)
            }
            let missing = "alx-missing-\(UInt32.random(in: 0..<UInt32.max))"
            let e2 = await #expect(throws: ObjectStoreError(.noSuchBucket, "")) {
                try await good.putObject(bucket: missing, key: "k", body: ByteBuffer(string: "x"))
            }
            #expect(e2?.message.contains(missing) == true)
            await #expect(throws: ObjectStoreError(.noSuchBucket, "")) { try await good.checkBucket(missing) }
            try await good.checkBucket(bucket)
        } catch {
            await Engine.cleanup(good, bucket)
            throw error
        }
        await Engine.cleanup(good, bucket)
    }

    @Test("lease: one holder; a second node waits, then takes over once the first stops renewing")
    func lease() async throws {
        let s3 = try Engine.client()
        let bucket = try await Engine.bucket(s3)
        do {
            let policy = LeasePolicy(ttlMilliseconds: 2_000, skewMilliseconds: 500)
            // The default settle (1 s): a write must land within half of it to be trusted, and with 200 ms a PUT on a
            // loaded 2-core machine took longer three times in a row ("could not write the lease quickly enough").
            let a = LeaseKeeper(client: s3, bucket: bucket, prefix: "m/", holder: "node-a", policy: policy)
            let b = LeaseKeeper(client: s3, bucket: bucket, prefix: "m/", holder: "node-b", policy: policy)
            try await a.acquire()
            #expect(await a.isHeld())
            let held = await #expect(throws: ObjectStoreError(.leaseHeld, "")) { try await b.acquire() }
            #expect(held?.message.contains("node-a") == true)
            try await a.renew()
            await #expect(throws: ObjectStoreError(.leaseHeld, "")) { try await b.acquire() }
            // node-a dies: it renews no more. After its TTL and the skew allowance, node-b takes over.
            try await Task.sleep(nanoseconds: 2_600_000_000)
            #expect(!(await a.isHeld()))
            try await b.acquire()
            #expect(await b.isHeld())
            #expect(try await b.read()?.holder == "node-b")
            // node-a comes back: it must learn it lost the lease, not overwrite node-b's.
            await #expect(throws: ObjectStoreError(.leaseHeld, "")) { try await a.renew() }
            #expect(try await b.read()?.holder == "node-b")
            try await b.release()
            #expect(try await b.read() == nil)
            try await a.acquire()
            #expect(await a.isHeld())
        } catch {
            await Engine.cleanup(s3, bucket)
            throw error
        }
        await Engine.cleanup(s3, bucket)
    }
}

/// The engine is not running at all: a clear error that names the endpoint, after the bounded retries.
@Suite("S3 client with no engine")
struct NoEngineTests {
    @Test("connection refused names the endpoint, after bounded retries")
    func refused() async throws {
        // A port nothing listens on: bind one, close it, use it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        close(fd)
        let s3 = try S3Client(
            endpoint: "http://127.0.0.1:\(port)", region: "us-east-1",
            credentials: S3Credentials(accessKey: "a", secretKey: "b"),
            retry: RetryPolicy(maxAttempts: 3, baseDelayMilliseconds: 10, maxDelayMilliseconds: 20))
        let error = await #expect(throws: ObjectStoreError(.unreachable, "")) {
            try await s3.putObject(bucket: "b", key: "k", body: ByteBuffer(string: "x"))
        }
        #expect(error?.message.contains("http://127.0.0.1:\(port)") == true)
        #expect(error?.message.contains("after 3 attempts") == true)
        #expect(s3.requestCount == 3)
    }
}

final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var _buffer = ByteBuffer()
    func append(_ piece: ByteBuffer) {
        lock.lock()
        var piece = piece
        _buffer.writeBuffer(&piece)
        lock.unlock()
    }
    var buffer: ByteBuffer {
        lock.lock()
        defer { lock.unlock() }
        return _buffer
    }
}

/// A lease holder in another process, killed with SIGKILL: it cannot release anything, so the second node must
/// wait for the expiry and then take over.
@Suite("Lease takeover after kill -9 of the holder (S3_ENDPOINT)", .enabled(if: Engine.available))
struct LeaseKillTests {
    static let binary: String = {
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("alexandria-s3-lease").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return ".build/debug/alexandria-s3-lease"
    }()

    @Test("node A (a process) holds the lease, is killed -9, node B takes over after the TTL")
    func killHolder() async throws {
        let s3 = try Engine.client()
        let bucket = try await Engine.bucket(s3)
        let holder = Process()
        do {
            holder.executableURL = URL(fileURLWithPath: Self.binary)
            holder.arguments = [bucket, "m/", "node-a", "3000"]
            let out = Pipe()
            holder.standardOutput = out
            try holder.run()
            let line = String(decoding: out.fileHandleForReading.availableDataOrWait(), as: UTF8.self)
            #expect(line.hasPrefix("held"), "holder printed: \(line)")
            let policy = LeasePolicy(ttlMilliseconds: 3_000, skewMilliseconds: 750)
            let b = LeaseKeeper(
                client: s3, bucket: bucket, prefix: "m/", holder: "node-b", policy: policy, settleMilliseconds: 200)
            // While A renews (every second), B is refused, even after A's first TTL has passed.
            try await Task.sleep(nanoseconds: 4_000_000_000)
            let refused = await #expect(throws: ObjectStoreError(.leaseHeld, "")) { try await b.acquire() }
            #expect(refused?.message.contains("node-a") == true)
            kill(holder.processIdentifier, SIGKILL)
            holder.waitUntilExit()
            #expect(holder.terminationReason == .uncaughtSignal)
            let killedAt = LeaseKeeper.wallClockMilliseconds()
            var took: Int64?
            while took == nil, LeaseKeeper.wallClockMilliseconds() - killedAt < 10_000 {
                do {
                    try await b.acquire()
                    took = LeaseKeeper.wallClockMilliseconds() - killedAt
                } catch let e as ObjectStoreError where e.code == .leaseHeld {
                    try await Task.sleep(nanoseconds: 250_000_000)
                }
            }
            let after = try #require(took, "node-b never took over")
            // Not before A's last lease ran out (≤ TTL + skew after the kill), and not much later.
            #expect(after <= 3_000 + 750 + 1_500, "took over \(after) ms after the kill")
            #expect(try await b.read()?.holder == "node-b")
        } catch {
            if holder.isRunning { kill(holder.processIdentifier, SIGKILL) }
            await Engine.cleanup(s3, bucket)
            throw error
        }
        await Engine.cleanup(s3, bucket)
    }
}

extension FileHandle {
    /// The first bytes written to a pipe (blocks until some arrive or the writer closes it).
    func availableDataOrWait() -> Data { availableData }
}
