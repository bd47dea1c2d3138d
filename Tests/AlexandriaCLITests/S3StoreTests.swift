import AlexandriaCore
import AlexandriaObjectStore
import Foundation
import NIOCore
import Testing

/// The engine these tests run against, from the environment Tests/s3.sh sets after starting OpenStack Swift:
/// S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_REGION. Without S3_ENDPOINT the suite is skipped.
enum S3Engine {
    static let environment = ProcessInfo.processInfo.environment
    static var available: Bool { environment["S3_ENDPOINT"] != nil }
    static var endpoint: String { environment["S3_ENDPOINT"] ?? "http://127.0.0.1:1" }

    static func client(secret: String? = nil) throws -> S3Client {
        try S3Client(
            endpoint: endpoint, region: environment["S3_REGION"] ?? "us-east-1",
            credentials: S3Credentials(
                accessKey: environment["AWS_ACCESS_KEY_ID"] ?? "",
                secretKey: secret ?? environment["AWS_SECRET_ACCESS_KEY"] ?? ""))
    }

    /// A new bucket with a unique name.
    static func bucket() async throws -> String {
        let name = "alx-cli-\(UInt32.random(in: 0...UInt32.max))"
        try await client().createBucket(name)
        return name
    }

    /// A home whose store keeps its packs in `bucket` under `prefix`.
    static func home(bucket: String, prefix: String = "node/") throws -> CLI {
        let cli = CLI()
        let r = try cli.run("init")
        guard r.status == 0 else { throw CLIFailure("init failed: \(r.stderr)") }
        let path = cli.home + "/config.toml"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let store = """
            [store]
            backend = "s3"
            endpoint = "\(endpoint)"
            bucket = "\(bucket)"
            prefix = "\(prefix)"
            region = "\(environment["S3_REGION"] ?? "us-east-1")"
            """
        try text.replacingOccurrences(of: "[store]", with: store).write(
            toFile: path, atomically: true, encoding: .utf8)
        return cli
    }

    static func packObjects(_ bucket: String, prefix: String = "node/") async throws -> [ObjectInfo] {
        try await client().listObjects(bucket: bucket, prefix: prefix + "packs/")
    }

    /// Runs `alexandria ARGUMENTS --home HOME` with `environment` changed.
    static func run(_ cli: CLI, _ arguments: [String], environment changes: [String: String]) throws -> CLI.Result {
        let process = Process()
        (process.executableURL, process.arguments) = cli.command(arguments + ["--home", cli.home])
        var env = ProcessInfo.processInfo.environment
        for (k, v) in changes { env[k] = v }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLI.Result(status: process.terminationStatus, stdout: o, stderr: String(decoding: e, as: UTF8.self))
    }

    /// Local packs that hold bytes (the empty one listed for the next add does not count).
    static func localPacks(_ cli: CLI) -> [String] {
        let dir = cli.home + "/store/packs/"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter {
            $0.hasSuffix(".pack")
                && ((try? FileManager.default.attributesOfItem(atPath: dir + $0)[.size] as? Int) ?? 0) > 0
        }
    }
}

@Suite("The store on S3 (a real OpenStack Swift), as separate processes", .serialized, .enabled(if: S3Engine.available))
struct S3StoreTests {
    @Test func addCatVerifyGcAndRepairFromTheBucketAlone() async throws {
        let bucket = try await S3Engine.bucket()
        let cli = try S3Engine.home(bucket: bucket)
        defer { cli.cleanUp() }
        let data = randomBytes(3 << 20, seed: 501)
        let other = randomBytes(1 << 20, seed: 502)
        let address = ContentHash.of(data).description
        #expect(try cli.run("add", try cli.write(data, to: "a.bin")).status == 0)
        // Sealed and moved: nothing is left on local disk, the pack is in the bucket.
        #expect(S3Engine.localPacks(cli).isEmpty)
        #expect(try await S3Engine.packObjects(bucket).count == 1)
        #expect(try cli.run("cat", address).stdout == Data(data))
        #expect(try cli.run("cat", address, "--range", "1000000-1999999").stdout == Data(data[1_000_000..<2_000_000]))
        let verified = try cli.run("verify")
        #expect(verified.status == 0, "\(verified.stderr)")

        // The local index and every local pack gone: `verify --repair` rebuilds from the bucket alone.
        let otherAddress = ContentHash.of(other).description
        #expect(try cli.run("add", try cli.write(other, to: "b.bin")).status == 0)
        #expect(try cli.run("rm", otherAddress).status == 0)
        for name in try FileManager.default.contentsOfDirectory(atPath: cli.home + "/store") where name != "packs" {
            try FileManager.default.removeItem(atPath: cli.home + "/store/" + name)
        }
        #expect(S3Engine.localPacks(cli).isEmpty)
        let repaired = try cli.run("verify", "--repair")
        #expect(repaired.status == 0, "\(repaired.stderr)")
        #expect(repaired.text.contains("1 file(s)"), "\(repaired.text)")  // the removed file stays removed
        #expect(try cli.run("cat", address).stdout == Data(data))
        #expect(try cli.run("cat", otherAddress).status != 0)

        // gc drops the removed file's chunks: packs are rewritten, uploaded, and the old objects deleted.
        let before = try await S3Engine.packObjects(bucket).count
        let gc = try cli.run("gc")
        #expect(gc.status == 0, "\(gc.stderr)")
        #expect(gc.text.contains("bucket:"), "\(gc.text)")
        let after = try await S3Engine.packObjects(bucket)
        #expect(after.count < before && !after.isEmpty)
        #expect(try cli.run("verify").status == 0)
        #expect(try cli.run("cat", address).stdout == Data(data))
    }

    @Test func aDamagedObjectReadsAsMissingNeverWrong() async throws {
        let bucket = try await S3Engine.bucket()
        let cli = try S3Engine.home(bucket: bucket)
        defer { cli.cleanUp() }
        let data = randomBytes(1 << 20, seed: 503)
        let address = ContentHash.of(data).description
        #expect(try cli.run("add", try cli.write(data, to: "a.bin")).status == 0)
        // Overwrite the pack object with the same length and one byte flipped inside the first chunk's payload.
        let object = try #require(try await S3Engine.packObjects(bucket).first)
        let client = try S3Engine.client()
        var bytes = Array(
            try await client.getObject(bucket: bucket, key: object.key, maxBytes: 64 << 20).readableBytesView)
        bytes[56 + 1000] ^= 0xFF
        try await client.putObject(bucket: bucket, key: object.key, body: ByteBuffer(bytes: bytes))
        let cat = try cli.run("cat", address)
        #expect(cat.status != 0)
        #expect(cat.stdout.count < 56 + 1000, "bytes of the damaged chunk reached stdout")
        let verify = try cli.run("verify")
        #expect(verify.status != 0)
        // A rebuild from the bucket still reads the damaged object, and leaves out only the damaged chunk.
        for name in try FileManager.default.contentsOfDirectory(atPath: cli.home + "/store") where name != "packs" {
            try FileManager.default.removeItem(atPath: cli.home + "/store/" + name)
        }
        let repaired = try cli.run("verify", "--repair")
        #expect(repaired.text.contains("1 damaged chunk record(s) left out"), "\(repaired.text) \(repaired.stderr)")
        #expect(try cli.run("cat", address).status != 0)
        // The chunk is flagged and reads as missing from then on; a re-add replaces it with a good copy.
        #expect(try cli.run("add", try cli.write(data, to: "again.bin")).status == 0)
        #expect(try cli.run("cat", address).stdout == Data(data))
    }

    @Test func aNodeServesFromTheBucketToAPeerFetchAndTheGateway() async throws {
        let bucket = try await S3Engine.bucket()
        let cli = try S3Engine.home(bucket: bucket)
        defer { cli.cleanUp() }
        let data = randomBytes(5 << 20, seed: 504)
        let hex = ContentHash.of(data).hex
        #expect(try cli.run("add", try cli.write(data, to: "a.bin")).status == 0)
        #expect(S3Engine.localPacks(cli).isEmpty)
        let httpPort = Int.random(in: 20_000...60_000)
        let node = try NodeProcess(cli: cli, extra: ["--http", "127.0.0.1:\(httpPort)", "--no-mirror"])
        defer { node.stop() }
        let peer = CLI()
        defer { peer.cleanUp() }
        _ = try peer.run("init")
        let out = peer.home + "-out.bin"
        let fetched = try peer.runCommand(["fetch", "sha256:" + hex, "-o", out, "--peer", node.address])
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(FileManager.default.contents(atPath: out) == Data(data))
        try GatewayFixture.waitForHTTP(port: httpPort)
        let whole = try RawHTTP.get(port: httpPort, "/sha256/\(hex)")
        #expect(whole.status == 200)
        #expect(whole.body == data)
        let part = try RawHTTP.get(port: httpPort, "/sha256/\(hex)", headers: ["Range": "bytes=4000000-4099999"])
        #expect(part.status == 206)
        #expect(part.body == Array(data[4_000_000..<4_100_000]))
    }

    @Test func killedDuringAddThenVerifyAndAddAgain() async throws {
        let bucket = try await S3Engine.bucket()
        let cli = try S3Engine.home(bucket: bucket)
        defer { cli.cleanUp() }
        let data = randomBytes(16 << 20, seed: 505)
        let file = try cli.write(data, to: "big.bin")
        // Kill at a few points: during ingest, during the upload, and (likely) after.
        for delay in [1.0, 4.0] {
            let running = try cli.start(["add", file])
            try await Task.sleep(nanoseconds: UInt64(delay * 1e9))
            kill(running.process.processIdentifier, SIGKILL)
            running.process.waitUntilExit()
            let v = try cli.run("verify")
            // Nothing wrong is ever reported as data: either clean, or an unfinished write to finish.
            #expect(!v.text.contains("damaged") && !v.stderr.contains("damaged"), "\(v.text) \(v.stderr)")
        }
        let added = try cli.run("add", file)
        #expect(added.status == 0, "\(added.stderr)")
        #expect(S3Engine.localPacks(cli).isEmpty)
        let v = try cli.run("verify")
        #expect(v.status == 0, "\(v.text) \(v.stderr)")
        #expect(try cli.run("cat", ContentHash.of(data).description).stdout == Data(data))
    }

    @Test func aWrongSecretAndAMissingBucketSayWhatIsWrong() async throws {
        let bucket = try await S3Engine.bucket()
        let cli = try S3Engine.home(bucket: bucket)
        defer { cli.cleanUp() }
        let file = try cli.write(randomBytes(1000, seed: 506), to: "a.bin")
        let wrong = try S3Engine.run(cli, ["add", file], environment: ["AWS_SECRET_ACCESS_KEY": "not-the-secret"])
        #expect(wrong.status != 0)
        #expect(
            wrong.stderr.contains("refused access") && wrong.stderr.contains("AWS_SECRET_ACCESS_KEY"), "\(wrong.stderr)"
        )
        let missing = try S3Engine.home(bucket: "alx-no-such-bucket-\(UInt32.random(in: 0...UInt32.max))")
        defer { missing.cleanUp() }
        let r = try missing.run("add", file)
        #expect(r.status != 0)
        #expect(r.stderr.contains("does not exist"), "\(r.stderr)")
        let none = try S3Engine.run(
            cli, ["add", file], environment: ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""])
        #expect(none.stderr.contains("no S3 credentials"), "\(none.stderr)")
    }

    @Test func aSecondNodeRefusesWhileTheLeaseIsLiveAndTakesOverAfterKill9() async throws {
        let bucket = try await S3Engine.bucket()
        let first = try S3Engine.home(bucket: bucket)
        let second = try S3Engine.home(bucket: bucket)
        defer {
            first.cleanUp()
            second.cleanUp()
        }
        let data = randomBytes(2 << 20, seed: 507)
        #expect(try first.run("add", try first.write(data, to: "a.bin")).status == 0)
        let node = try NodeProcess(cli: first, extra: ["--no-mirror"])
        defer { node.stop() }
        let refused = try second.run("node", "run", "--listen", "127.0.0.1:\(Int.random(in: 20_000...60_000))")
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("holds the write lease"), "\(refused.stderr)")
        #expect(try second.run("add", try second.write([1, 2, 3], to: "b.bin")).stderr.contains("write lease"))
        kill(node.process.processIdentifier, SIGKILL)
        node.process.waitUntilExit()
        // The lease runs out (30 s ttl + 2 s skew); then the second node rebuilds its index from the bucket.
        let deadline = Date().addingTimeInterval(60)
        var repaired = try second.run("verify", "--repair")
        while repaired.status != 0 && Date() < deadline {
            #expect(repaired.stderr.contains("write lease"), "\(repaired.stderr)")
            try await Task.sleep(nanoseconds: 2_000_000_000)
            repaired = try second.run("verify", "--repair")
        }
        #expect(repaired.status == 0, "\(repaired.stderr)")
        #expect(try second.run("cat", ContentHash.of(data).description).stdout == Data(data))
        let takeover = try NodeProcess(cli: second, extra: ["--no-mirror"])
        defer { takeover.stop() }
        #expect(takeover.process.isRunning, "\(takeover.startupLog)")
    }
}
