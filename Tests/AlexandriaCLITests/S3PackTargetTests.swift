import AlexandriaCore
import Foundation
import Testing

/// Packs cut at the pack target, and publish and fetch reaching the bucket (in the suite of `S3StoreTests.swift`,
/// so `Tests/s3.sh` runs them against the engine it starts).
extension S3StoreTests {
    static func setPackTarget(_ cli: CLI, _ size: String) throws {
        let path = cli.home + "/config.toml"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: "[store]\n", with: "[store]\npack_target = \"\(size)\"\n").write(
            toFile: path, atomically: true, encoding: .utf8)
    }

    @Test func anAddLargerThanThePackTargetMakesSeveralObjectsAndLeavesNothingLocal() async throws {
        let bucket = try await S3Engine.bucket()
        let cli = try S3Engine.home(bucket: bucket)
        defer { cli.cleanUp() }
        try Self.setPackTarget(cli, "4 MiB")
        let data = randomBytes(13 << 20, seed: 601)
        let address = ContentHash.of(data).description
        let added = try cli.run("add", try cli.write(data, to: "a.bin"))
        #expect(added.status == 0, "\(added.stderr)")
        // Three full packs (uploaded while the rest was ingested) and the tail, sealed at the end of the add.
        let objects = try await S3Engine.packObjects(bucket)
        #expect(objects.count == 4, "\(objects.map(\.size))")
        #expect(objects.filter { $0.size >= 4 << 20 }.count == 3, "\(objects.map(\.size))")
        #expect(S3Engine.localPacks(cli).isEmpty)
        #expect(try cli.run("cat", address).stdout == Data(data))
        #expect(try cli.run("cat", address, "--range", "4194000-9000000").stdout == Data(data[4_194_000..<9_000_001]))
        let verified = try cli.run("verify")
        #expect(verified.status == 0, "\(verified.text) \(verified.stderr)")

        let bad = try S3Engine.home(bucket: bucket, prefix: "bad/")
        defer { bad.cleanUp() }
        try Self.setPackTarget(bad, "1 KiB")
        let r = try bad.run("add", try bad.write([1, 2, 3], to: "b.bin"))
        #expect(r.status != 0)
        #expect(r.stderr.contains("pack_target must be a size from 1 MiB"), "\(r.stderr)")
    }

    @Test func publishAndACopyingFetchIntoAnS3HomeLeaveNothingLocal() async throws {
        let bucket = try await S3Engine.bucket()
        let cli = try S3Engine.home(bucket: bucket)
        defer { cli.cleanUp() }
        #expect(try cli.run("keys", "generate", "acme").status == 0)
        let dir = cli.home + "-release"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let weights = randomBytes(3 << 20, seed: 602)
        try Data(weights).write(to: URL(fileURLWithPath: dir + "/model.bin"))
        let published = try cli.run("publish", dir, "--name", "tiny", "--version", "1.0")
        #expect(published.status == 0, "\(published.stderr)")
        #expect(S3Engine.localPacks(cli).isEmpty)
        #expect(try await S3Engine.packObjects(bucket).count >= 1)

        // A second s3 home fetches the file from a node serving the first out of the bucket, with --copy.
        let node = try NodeProcess(cli: cli, extra: ["--no-mirror"])
        defer { node.stop() }
        let peer = try S3Engine.home(bucket: bucket, prefix: "peer/")
        defer { peer.cleanUp() }
        let out = peer.home + "-out.bin"
        let hex = ContentHash.of(weights).hex
        let fetched = try peer.runCommand(["fetch", "sha256:" + hex, "-o", out, "--peer", node.address, "--copy"])
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(FileManager.default.contents(atPath: out) == Data(weights))
        #expect(S3Engine.localPacks(peer).isEmpty)
        let theirs = try await S3Engine.packObjects(bucket, prefix: "peer/")
        #expect(theirs.reduce(0) { $0 + Int($1.size) } >= 3 << 20, "\(theirs.map(\.size))")
        try FileManager.default.removeItem(atPath: out)
        #expect(try peer.run("cat", "sha256:" + hex).stdout == Data(weights))
    }
}
