import AlexandriaCore
import Foundation
import NIOCore
import Testing

@testable import AlexandriaObjectStore

@Suite("Pack object layout and date parsing")
struct PackLayoutTests {
    @Test("keys are named by the pack's SHA-256 under <prefix>packs/<2 hex>/ and parse back")
    func keys() throws {
        let layout = try PackObjectLayout(prefix: "mirror/")
        let h = ContentHash.of(Array("pack".utf8))
        let key = layout.key(for: h)
        #expect(key == "mirror/packs/\(h.hex.prefix(2))/\(h.hex).pack")
        #expect(layout.pack(fromKey: key) == h)
        #expect(try PackObjectLayout(prefix: "").pack(fromKey: "packs/\(h.hex.prefix(2))/\(h.hex).pack") == h)
        for bad in [
            "mirror/packs/00/\(h.hex).pack", "mirror/packs/\(h.hex.prefix(2))/\(h.hex).tmp", "mirror/lease",
            "other/packs/\(h.hex.prefix(2))/\(h.hex).pack",
            "mirror/packs/\(h.hex.prefix(2))/\(h.hex.uppercased()).pack",
        ] {
            #expect(layout.pack(fromKey: bad) == nil, "\(bad)")
        }
        for bad in ["/x/", "x", "a//b/"] {
            #expect(throws: ObjectStoreError(.configuration, "")) { try PackObjectLayout(prefix: bad) }
        }
    }

    @Test(
        "Initiated timestamps",
        arguments: [
            ("2026-11-29T23:05:09.000Z", Int64(1_795_993_509)), ("1970-01-01T00:00:00Z", Int64(0)),
            ("2000-02-29T00:00:00.123Z", Int64(951_782_400)),
        ])
    func iso(_ text: String, _ seconds: Int64) {
        #expect(PackObjects.parseISO8601(text) == seconds)
    }

    @Test("bad timestamps are nil")
    func isoBad() {
        for bad in ["", "2026-11-29 23:05:09Z", "2026-13-01T00:00:00Z", "2026-11-29T23:05:09", "x026-11-29T23:05:09Z"] {
            #expect(PackObjects.parseISO8601(bad) == nil)
        }
    }
}

@Suite("Pack objects against a real engine (S3_ENDPOINT)", .enabled(if: Engine.available), .serialized)
struct PackObjectsEngineTests {
    static func file(_ bytes: ByteBuffer) throws -> String {
        let path = NSTemporaryDirectory() + "alx-pack-\(UInt64.random(in: 0..<UInt64.max)).bin"
        try Data(bytes.readableBytesView).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("upload (single PUT and multipart), idempotent re-upload, ranged and verified reads, list, delete")
    func roundTrip() async throws {
        let s3 = try Engine.client()
        let bucket = try await Engine.bucket(s3)
        var options = PackTransferOptions()
        options.partBytes = 5 << 20
        options.singlePutBytes = 1 << 20
        options.partsInFlight = 2
        let packs = PackObjects(
            client: s3, bucket: bucket, layout: try PackObjectLayout(prefix: "m/"), options: options)
        let small = Engine.bytes(100_000, seed: 7)
        let big = Engine.bytes(12 << 20, seed: 8)
        let smallPath = try Self.file(small)
        let bigPath = try Self.file(big)
        defer {
            unlink(smallPath)
            unlink(bigPath)
        }
        do {
            let a = try await packs.upload(file: smallPath)
            #expect(a.hash == ContentHash.of(Array(small.readableBytesView)) && a.size == 100_000)
            let before = s3.requestCount
            let b = try await packs.upload(file: bigPath)
            // HEAD, create, 3 parts, complete, HEAD.
            #expect(s3.requestCount - before == 7)
            #expect(b.hash == ContentHash.of(Array(big.readableBytesView)))
            let again = s3.requestCount
            #expect(try await packs.upload(file: bigPath) == b)
            #expect(s3.requestCount - again == 1)  // only the HEAD: the object is there, named by its bytes
            let slice = try await packs.upload(file: bigPath, range: 1000..<2000)
            #expect(slice.hash == ContentHash.of(Array(big.readableBytesView)[1000..<2000]))

            let r = try await packs.read(b.hash, range: (5 << 20) - 3..<(5 << 20) + 5)
            #expect(r == big.getSlice(at: (5 << 20) - 3, length: 8))
            let listed = try await packs.list()
            #expect(Set(listed.map(\.hash)) == [a.hash, b.hash, slice.hash])
            #expect(try await s3.listMultipartUploads(bucket: bucket, prefix: "").isEmpty)

            let out = bigPath + ".down"
            #expect(try await packs.download(b.hash, to: out) == UInt64(12 << 20))
            #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(big.readableBytesView))
            unlink(out)

            // A damaged object (other bytes under the pack's name) is caught by the hash, and nothing is left.
            try await s3.putObject(bucket: bucket, key: a.key, body: Engine.bytes(100_000, seed: 9))
            await #expect(throws: ObjectStoreError(.integrity, "")) { try await packs.download(a.hash, to: out) }
            #expect(
                !FileManager.default.fileExists(atPath: out)
                    && !FileManager.default.fileExists(atPath: out + ".partial"))
            await #expect(throws: ObjectStoreError(.integrity, "")) { try await packs.stream(a.hash) { _ in } }

            try await packs.delete([a.hash, slice.hash])
            #expect(try await packs.list().map(\.hash) == [b.hash])
        } catch {
            await Engine.cleanup(s3, bucket)
            throw error
        }
        await Engine.cleanup(s3, bucket)
    }

    @Test("gc aborts multipart uploads a crash left behind, and only old ones")
    func staleUploads() async throws {
        let s3 = try Engine.client()
        let bucket = try await Engine.bucket(s3)
        let packs = PackObjects(client: s3, bucket: bucket, layout: try PackObjectLayout(prefix: "m/"))
        do {
            let stale = try await s3.createMultipartUpload(bucket: bucket, key: "m/packs/aa/left-by-a-crash.pack")
            _ = try await s3.uploadPart(
                bucket: bucket, key: "m/packs/aa/left-by-a-crash.pack", uploadId: stale, number: 1,
                body: Engine.bytes(1000))
            _ = try await s3.createMultipartUpload(bucket: bucket, key: "other/x")
            let now = S3Client.nowSeconds()
            #expect(try await packs.abortStaleUploads(olderThanSeconds: 3600, nowSeconds: now) == 0)
            #expect(try await packs.abortStaleUploads(olderThanSeconds: 3600, nowSeconds: now + 3700) == 1)
            #expect(try await s3.listMultipartUploads(bucket: bucket, prefix: "").map(\.key) == ["other/x"])
        } catch {
            await Engine.cleanup(s3, bucket)
            throw error
        }
        await Engine.cleanup(s3, bucket)
    }

    /// S3_PROXY_CONTROL="<Tests/s3-proxy.sh> <dir>" (Tests/s3.sh sets it) lets this test kill the engine's S3 proxy
    /// and start it again. Without it the test is skipped.
    @Test(
        "the engine stopped mid-write: a clear error; restarted: the same upload succeeds with no manual step",
        .enabled(if: ProcessInfo.processInfo.environment["S3_PROXY_CONTROL"] != nil))
    func engineRestart() async throws {
        let control = ProcessInfo.processInfo.environment["S3_PROXY_CONTROL"]!.split(separator: " ").map(String.init)
        // posix_spawn + waitpid rather than Foundation's Process: its waitUntilExit was seen to miss the exit of
        // a script whose daemons detach, and hang with the child a zombie.
        func engine(_ verb: String) throws -> Bool {
            let args = ["/bin/bash", control[0], verb, control[1]]
            let cArgs = args.map { strdup($0) } + [nil]
            let cEnv = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { (cArgs + cEnv).forEach { free($0) } }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            var pid: pid_t = 0
            guard posix_spawn(&pid, args[0], &actions, nil, cArgs, cEnv) == 0 else { return false }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            return status == 0
        }
        let s3 = try Engine.client(
            retry: RetryPolicy(maxAttempts: 3, baseDelayMilliseconds: 50, maxDelayMilliseconds: 200))
        let bucket = try await Engine.bucket(s3)
        var options = PackTransferOptions()
        options.partBytes = 5 << 20
        options.singlePutBytes = 1 << 20
        let packs = PackObjects(client: s3, bucket: bucket, layout: try PackObjectLayout(prefix: ""), options: options)
        let data = Engine.bytes(30 << 20, seed: 11)
        let path = try Self.file(data)
        defer { unlink(path) }
        do {
            let upload = Task { try await packs.upload(file: path) }
            try await Task.sleep(nanoseconds: 150_000_000)
            #expect(try engine("stop"))
            let error = await #expect(throws: ObjectStoreError.self) { try await upload.value }
            #expect(error?.code == .unreachable || error?.code == .unavailable)
            #expect(error?.message.contains(Engine.endpoint) == true, "\(String(describing: error))")
            try #require(try engine("start"), "Tests/s3-proxy.sh start failed")
            let done = try await packs.upload(file: path)
            #expect(done.hash == ContentHash.of(Array(data.readableBytesView)))
            let r = try await packs.read(done.hash, range: 17..<(20 << 20))
            #expect(r == data.getSlice(at: 17, length: (20 << 20) - 17))
            _ = try await packs.abortStaleUploads(olderThanSeconds: 0, nowSeconds: S3Client.nowSeconds() + 1)
            #expect(try await s3.listMultipartUploads(bucket: bucket, prefix: "").isEmpty)
        } catch {
            await Engine.cleanup(s3, bucket)
            throw error
        }
        await Engine.cleanup(s3, bucket)
    }
}
