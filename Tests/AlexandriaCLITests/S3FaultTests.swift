import AlexandriaCore
import AlexandriaHome
import AlexandriaObjectStore
import AlexandriaStore
import AlexandriaStoreS3
import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Helpers for the fault tests: homes with extra `[store]` keys or another engine, kill points found by watching
/// what a command does, and control of the engine's S3 proxy.
enum S3Fault {
    /// A home whose packs live in `bucket` on `endpoint` under `node/`, with `extra` lines added to `[store]`.
    static func home(bucket: String, endpoint: String = S3Engine.endpoint, extra: [String] = []) throws -> CLI {
        let cli = CLI()
        let r = try cli.run("init")
        guard r.status == 0 else { throw CLIFailure("init failed: \(r.stderr)") }
        let path = cli.home + "/config.toml"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let store =
            ([
                "[store]", "backend = \"s3\"", "endpoint = \"\(endpoint)\"", "bucket = \"\(bucket)\"",
                "prefix = \"node/\"", "region = \"\(S3Engine.environment["S3_REGION"] ?? "us-east-1")\"",
            ] + extra).joined(separator: "\n")
        try text.replacingOccurrences(of: "[store]", with: store).write(
            toFile: path, atomically: true, encoding: .utf8)
        return cli
    }

    static func client(endpoint: String) throws -> S3Client {
        try S3Client(
            endpoint: endpoint, region: S3Engine.environment["S3_REGION"] ?? "us-east-1",
            credentials: S3Credentials.resolve(environment: S3Engine.environment, file: nil))
    }

    /// Starts `alexandria ARGUMENTS`, waits until `trigger` holds (checked every 20 ms), waits `after` seconds more,
    /// then kills it with SIGKILL. Returns false when the command had already exited (the point was never reached).
    static func kill(
        _ cli: CLI, _ arguments: [String], after: Double = 0, timeout: Double = 60,
        when trigger: () async throws -> Bool
    ) async throws -> Bool {
        let running = try cli.start(arguments)
        // Drain the pipes, so a chatty command never blocks on a full one.
        let out = running.outPipe.fileHandleForReading
        let err = running.errPipe.fileHandleForReading
        DispatchQueue.global().async { _ = out.readDataToEndOfFile() }
        DispatchQueue.global().async { _ = err.readDataToEndOfFile() }
        let deadline = Date().addingTimeInterval(timeout)
        var reached = false
        while running.process.isRunning && Date() < deadline {
            if try await trigger() {
                reached = true
                break
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        if reached && after > 0 { try await Task.sleep(nanoseconds: UInt64(after * 1e9)) }
        let wasRunning = running.process.isRunning
        Glibc.kill(running.process.processIdentifier, SIGKILL)
        running.process.waitUntilExit()
        return reached && wasRunning
    }

    /// Multipart uploads in progress under `prefix` of `bucket`.
    static func uploads(_ bucket: String, prefix: String = "node/") async throws -> [String] {
        try await S3Engine.client().listMultipartUploads(bucket: bucket, prefix: prefix).map(\.key)
    }
}

/// Kills the S3 proxy of the engine Tests/s3.sh started and starts it again, through `S3_PROXY_CONTROL`
/// ("<Tests/s3-proxy.sh> <dir>"): the engine is unreachable while it is stopped, and back within seconds.
struct EngineProxy {
    let script: String
    let dir: String

    init?() {
        guard let control = ProcessInfo.processInfo.environment["S3_PROXY_CONTROL"] else { return nil }
        let parts = control.split(separator: " ").map(String.init)
        guard parts.count == 2 else { return nil }
        (script, dir) = (parts[0], parts[1])
    }

    /// Runs the script with posix_spawn and waitpid (Foundation's Process was seen to miss the exit of a script
    /// whose daemons detach).
    func run(_ verb: String) throws {
        let args = ["/bin/bash", script, verb, dir]
        let cArgs = args.map { strdup($0) } + [nil]
        let env = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cArgs + env).forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        guard posix_spawn(&pid, args[0], &actions, nil, cArgs, env) == 0 else {
            throw CLIFailure("could not run \(script)")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw CLIFailure("\(script) \(verb) \(dir) failed (status \(status))") }
    }

    func stop() throws { try run("stop") }
    func start() throws { try run("start") }
}

@Suite(
    "The s3 store under faults (a real OpenStack Swift), as separate processes", .serialized,
    .enabled(if: S3Engine.available))
struct S3FaultTests {
    /// kill -9 of `add` between its upload and its commit, and of `gc` at several points of its work (compaction
    /// writing a local pack, a new object uploaded, the deletes after it), each followed by `verify` and reads of
    /// every file; then one `gc` finishes the work and cleans the bucket, a stale multipart upload included.
    @Test func killedDuringAddAndGcAtSeveralPointsLosesNothingAndTheNextGcCleansUp() async throws {
        let bucket = try await S3Engine.bucket()
        // Uploads older than 0 s are stale: nothing else writes this prefix during the test.
        let cli = try S3Fault.home(bucket: bucket, extra: ["abort_uploads_after = 0"])
        defer { cli.cleanUp() }
        var kept: [[UInt8]] = []
        func check(_ when: String) throws {
            let v = try cli.run("verify")
            #expect(v.status == 0, "verify after \(when): \(v.text) \(v.stderr)")
            for data in kept {
                let cat = try cli.run("cat", ContentHash.of(data).description)
                #expect(cat.stdout == Data(data), "cat after \(when): \(cat.stderr)")
            }
        }
        func objects() async throws -> Set<String> { Set(try await S3Engine.packObjects(bucket).map(\.key)) }

        // `add` killed once its pack object is in the bucket, before it records that: the pack stays local and
        // indexed, and the next write finds the object there (HEAD) and records it.
        let first = randomBytes(2 << 20, seed: 601)
        kept.append(first)
        let killedAdd = try await S3Fault.kill(cli, ["add", try cli.write(first, to: "first.bin")]) {
            !(try await S3Engine.packObjects(bucket).isEmpty)
        }
        try check("add killed after its upload (point reached: \(killedAdd))")
        let dropped = randomBytes(1 << 20, seed: 602)
        let second = randomBytes(1 << 20, seed: 603)
        kept.append(second)
        for (name, data) in [("dropped.bin", dropped), ("second.bin", second)] {
            let r = try cli.run("add", try cli.write(data, to: name))
            #expect(r.status == 0, "\(r.stderr)")
        }
        #expect(try cli.run("rm", ContentHash.of(dropped).description).status == 0)
        #expect(S3Engine.localPacks(cli).isEmpty)

        // A multipart upload a killed writer left under the prefix, and one outside it (never ours to touch).
        let client = try S3Engine.client()
        let stale = try await client.createMultipartUpload(bucket: bucket, key: "node/packs/ab/left-by-a-kill.pack")
        _ = try await client.uploadPart(
            bucket: bucket, key: "node/packs/ab/left-by-a-kill.pack", uploadId: stale, number: 1,
            body: ByteBuffer(repeating: 1, count: 1000))
        _ = try await client.createMultipartUpload(bucket: bucket, key: "other/upload")

        // gc rewrites every pack it has not compressed yet (reading them back from the bucket), uploads the new
        // pack, then deletes the old objects. Each point gets fresh work: a new file whose pack gc will rewrite.
        var reached: [String] = []
        for (i, (point, delay)) in [("compacting", 0.0), ("uploaded", 0.0), ("uploaded", 0.3), ("uploaded", 1.0)]
            .enumerated()
        {
            let fresh = randomBytes(1 << 20, seed: 610 + UInt64(i))
            kept.append(fresh)
            let added = try cli.run("add", try cli.write(fresh, to: "fresh\(i).bin"))
            #expect(added.status == 0, "add after the kills so far (\(reached)): \(added.stderr)")
            let before = try await objects()
            let hit = try await S3Fault.kill(cli, ["gc"], after: delay) {
                switch point {
                case "compacting": return !S3Engine.localPacks(cli).isEmpty
                default: return !(try await objects().subtracting(before).isEmpty)
                }
            }
            if hit { reached.append("\(point)+\(delay)s") }
            try check("gc killed at \(point) + \(delay) s")
            #expect(try cli.run("cat", ContentHash.of(dropped).description).status != 0)
        }
        #expect(reached.count >= 2, "kill points reached: \(reached)")

        // The next gc finishes: nothing is left to upload, no stale upload under the prefix, no object that no
        // index row names (a second gc finds nothing to do).
        let gc = try cli.run("gc")
        #expect(gc.status == 0, "\(gc.stderr)")
        #expect(S3Engine.localPacks(cli).isEmpty)
        #expect(try await S3Fault.uploads(bucket).isEmpty)
        #expect(try await S3Fault.uploads(bucket, prefix: "other/") == ["other/upload"])
        let again = try cli.run("gc")
        #expect(again.text.contains("aborted 0 stale upload(s), deleted 0 pack object(s)"), "\(again.text)")
        try check("the final gc")
        // The bucket alone still holds every file: rebuild the index from it.
        for name in try FileManager.default.contentsOfDirectory(atPath: cli.home + "/store") where name != "packs" {
            try FileManager.default.removeItem(atPath: cli.home + "/store/" + name)
        }
        let repaired = try cli.run("verify", "--repair")
        #expect(repaired.status == 0, "\(repaired.text) \(repaired.stderr)")
        #expect(repaired.text.contains("\(kept.count) file(s)"), "\(repaired.text)")
        try check("a rebuild from the bucket")
    }

    /// The engine dies while `add` writes, next to a running node: the add fails saying what failed, where, that
    /// nothing is lost and what to do; reads of the new file work, reads from the bucket fail as I/O (never as
    /// damage); once the engine is back the node uploads the pack on its own and every read works again.
    @Test(.enabled(if: EngineProxy() != nil))
    func theEngineStoppedMidWriteThenRestartedRecoversWithNoManualStep() async throws {
        let proxy = try #require(EngineProxy())
        let bucket = try await S3Engine.bucket()
        let cli = try S3Fault.home(bucket: bucket)
        defer { cli.cleanUp() }
        let old = randomBytes(1 << 20, seed: 620)
        #expect(try cli.run("add", try cli.write(old, to: "old.bin")).status == 0)
        let node = try NodeProcess(cli: cli, extra: ["--no-mirror"])
        defer { node.stop() }
        #expect(node.process.isRunning, "\(node.startupLog)")

        let data = randomBytes(12 << 20, seed: 621)
        let adding = try cli.start(["add", try cli.write(data, to: "new.bin")])
        // The add has checked the bucket and is writing its pack: now the engine dies.
        let deadline = Date().addingTimeInterval(30)
        while S3Engine.localPacks(cli).isEmpty && adding.process.isRunning && Date() < deadline {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        try proxy.stop()
        do {
            let err = adding.errPipe.fileHandleForReading.readDataToEndOfFile()
            _ = adding.outPipe.fileHandleForReading.readDataToEndOfFile()
            adding.process.waitUntilExit()
            let message = String(decoding: err, as: UTF8.self)
            #expect(adding.process.terminationStatus == 3, "\(message)")
            #expect(message.contains(S3Engine.endpoint) && message.contains("is the engine running"), "\(message)")
            #expect(message.contains("Nothing is lost") && message.contains("start the engine"), "\(message)")

            // Meanwhile: the new file reads from its local pack; the old one, in the bucket, is an I/O error.
            #expect(try cli.run("cat", ContentHash.of(data).description).stdout == Data(data))
            let unreachable = try cli.run("cat", ContentHash.of(old).description)
            #expect(unreachable.status == 3)
            #expect(unreachable.stderr.contains("object store"), "\(unreachable.stderr)")
        } catch {
            try? proxy.start()
            throw error
        }
        try proxy.start()
        // No manual step: the running node uploads the waiting pack in its next round (every 10 s).
        let uploaded = Date().addingTimeInterval(60)
        while !S3Engine.localPacks(cli).isEmpty && Date() < uploaded {
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        #expect(S3Engine.localPacks(cli).isEmpty, "the node did not upload the pack after the engine came back")
        #expect(try await S3Engine.packObjects(bucket).count == 2)
        #expect(node.process.isRunning)
        // Nothing was flagged while the engine was away: both read, verify is clean, and writes work at once.
        #expect(try cli.run("cat", ContentHash.of(old).description).stdout == Data(old))
        #expect(try cli.run("cat", ContentHash.of(data).description).stdout == Data(data))
        let v = try cli.run("verify")
        #expect(v.status == 0, "\(v.text) \(v.stderr)")
        #expect(try cli.run("add", try cli.write([1, 2, 3], to: "after.bin")).status == 0)
    }

    /// The engine's device fills (a second engine on a small tmpfs, filled up to 1 MiB): `add` fails with a clear
    /// message and exit 3, the file stays readable in the home, and once space is freed the next write uploads it.
    @Test(
        .enabled(
            if: S3Engine.environment["S3_FULL_ENDPOINT"] != nil && S3Engine.environment["S3_FULL_MOUNT"] != nil))
    func aFullDeviceSaysSoLosesNothingAndRecoversOnceSpaceIsFree() async throws {
        let endpoint = S3Engine.environment["S3_FULL_ENDPOINT"]!
        let mount = S3Engine.environment["S3_FULL_MOUNT"]!
        let client = try S3Fault.client(endpoint: endpoint)
        let bucket = "alx-full-\(UInt32.random(in: 0...UInt32.max))"
        try await client.createBucket(bucket)
        let cli = try S3Fault.home(bucket: bucket, endpoint: endpoint)
        defer { cli.cleanUp() }
        let filler = mount + "/filler"
        defer { unlink(filler) }
        // Fill the device but for 1 MiB (its other files stay as they are).
        var fs = statvfs()
        let statted = statvfs(mount, &fs)
        #expect(statted == 0)
        let free = Int(fs.f_bavail) * Int(fs.f_frsize)
        let fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0)
        let block = [UInt8](repeating: 0xA5, count: 1 << 20)
        for _ in 0..<max(0, free / (1 << 20) - 1) {
            guard block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == block.count else { break }
        }
        close(fd)

        let data = randomBytes(4 << 20, seed: 630)
        let full = try cli.run("add", try cli.write(data, to: "a.bin"))
        #expect(full.status == 3, "\(full.stderr)")
        #expect(full.stderr.contains("out of space") && full.stderr.contains(endpoint), "\(full.stderr)")
        #expect(full.stderr.contains("Nothing is lost"), "\(full.stderr)")
        #expect(try cli.run("cat", ContentHash.of(data).description).stdout == Data(data))
        #expect(try cli.run("verify").status == 0)

        // Space freed. Swift's proxy keeps refusing a device that reported itself full for up to a minute
        // (error_suppression_interval), so the next write is retried as an operator would, for at most 90 s.
        unlink(filler)
        let more = try cli.write([4, 5, 6], to: "b.bin")
        var next = try cli.run("add", more)
        let deadline = Date().addingTimeInterval(90)
        while next.status != 0 && Date() < deadline {
            try await Task.sleep(nanoseconds: 1_000_000_000)
            next = try cli.run("add", more)
        }
        #expect(next.status == 0, "\(next.stderr)")
        #expect(S3Engine.localPacks(cli).isEmpty)
        #expect(try cli.run("cat", ContentHash.of(data).description).stdout == Data(data))
        #expect(try await client.listObjects(bucket: bucket, prefix: "node/packs/").count == 2)
    }

    /// Compression on idle (issue 13 §4) on an s3 home: a sealed pack waiting for its upload is not rewritten while
    /// the upload runs (the window between the uploader's upload and its commit, where a rewrite would leave an
    /// object no index row names and fail the commit), nor is a pack already in the bucket; `gc` compresses them.
    @Test func idleCompressionNeverRewritesAPackTheUploaderIsMoving() async throws {
        let bucket = try await S3Engine.bucket()
        let cli = try S3Fault.home(bucket: bucket)
        defer { cli.cleanUp() }
        let text = Array(String(repeating: "weights compress well when they repeat; ", count: 60_000).utf8)
        let file = try cli.write(text, to: "text.bin")
        let home = Home(path: cli.home)
        let s3 = try #require(try home.objectStore())
        let address: ContentHash
        let uploaded: ContentHash
        do {
            let store = try home.openStore()
            address = try store.add(path: file).address
            try store.sealOpenPacks()
            let pending = try #require(try store.pendingUploads().first)
            uploaded = try await s3.objects.upload(file: pending.path).hash
            // The idle compressor runs between the upload and its commit (the node's Mirror, on its own thread).
            #expect(try store.compressOneIdlePack() == nil)
            try store.recordUploaded(pending, object: uploaded)
            #expect(try store.compressOneIdlePack() == nil)
            let listed = try await s3.objects.list().map(\.hash)
            #expect(Set(listed) == (try store.remoteObjects()) && listed == [uploaded])
        }
        #expect(try cli.run("cat", address.description).stdout == Data(text))
        #expect(try cli.run("verify").status == 0)
        // gc compresses it: reads it back, uploads the smaller pack, deletes the old object.
        let gc = try cli.run("gc")
        #expect(gc.status == 0, "\(gc.stderr)")
        let after = try await S3Engine.packObjects(bucket)
        #expect(after.count == 1 && after.first?.key.contains(uploaded.hex) == false)
        #expect((after.first?.size ?? .max) < UInt64(text.count))
        #expect(try cli.run("cat", address.description).stdout == Data(text))
    }

    /// `gc` never aborts the upload of a pack that still waits for it (the home's node may be sending it right now,
    /// and an abort racing its completion could leave a broken object), even with `abort_uploads_after = 0`; it
    /// aborts every other upload under the prefix, and that one once the pack is in the bucket.
    @Test func gcNeverAbortsTheUploadOfAPackStillWaitingForIt() async throws {
        let bucket = try await S3Engine.bucket()
        let cli = try S3Fault.home(bucket: bucket, extra: ["abort_uploads_after = 0"])
        defer { cli.cleanUp() }
        let home = Home(path: cli.home)
        let s3 = try #require(try home.objectStore())
        let store = try home.openStore()
        _ = try store.add(path: try cli.write(randomBytes(1 << 20, seed: 640), to: "a.bin"))
        try store.sealOpenPacks()
        let pending = try #require(try store.pendingUploads().first)
        let hash = ContentHash.of(Array(try Data(contentsOf: URL(fileURLWithPath: pending.path))))
        let key = s3.objects.layout.key(for: hash)
        // The node's upload of it, in progress; and one a crash left for a pack that is long gone.
        _ = try await s3.client.createMultipartUpload(bucket: bucket, key: key)
        _ = try await s3.client.createMultipartUpload(bucket: bucket, key: "node/packs/cd/left-by-a-crash.pack")
        // Swift reports `Initiated` rounded up to the second: let both be in the past.
        try await Task.sleep(nanoseconds: 1_500_000_000)
        #expect(try await s3.collect(store, lease: nil, staleSeconds: 0).abortedUploads == 1)
        #expect(try await S3Fault.uploads(bucket) == [key])
        #expect(try await s3.offload(store, sealOpen: false, lease: nil) == 1)
        #expect(try await s3.collect(store, lease: nil, staleSeconds: 0).abortedUploads == 1)
        #expect(try await S3Fault.uploads(bucket).isEmpty)
    }
}
