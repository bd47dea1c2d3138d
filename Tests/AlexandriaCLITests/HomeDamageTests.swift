import AlexandriaCore
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 11: a home whose catalog, config or publish log was damaged or raced says so and names the fix, and no
/// later command starts over on an empty catalog.
@Suite("Damage to a home is reported with its fix", .serialized)
struct HomeDamageTests {
    /// A home with a publisher key and one release.
    func publishedHome() throws -> (CLI, String) {
        let cli = CLI()
        _ = try cli.run("init")
        #expect(try cli.run("keys", "generate", "acme").status == 0)
        let model = cli.home + "-data/model"
        _ = try cli.write(randomBytes(60_000, seed: 11), to: "model/weights.bin")
        let r = try cli.run("publish", model, "--name", "tiny", "--version", "1.0")
        #expect(r.status == 0, "\(r.stderr)")
        return (cli, model)
    }

    @Test func aDeletedCatalogIsDamageAndNoCommandStartsOver() throws {
        let (cli, model) = try publishedHome()
        defer { cli.cleanUp() }
        #expect(try cli.run("verify").status == 0)
        #expect(FileManager.default.fileExists(atPath: cli.home + "/catalog.mark"))
        for suffix in ["", "-wal", "-shm"] { unlink(cli.home + "/catalog.sqlite" + suffix) }
        let verify = try cli.run("verify")
        #expect(verify.status == 1 && verify.text.contains("catalog") && verify.text.contains("verify --repair"))
        // publish would start the log over at index 0 (a fork) and accept any first binding: refused.
        let publish = try cli.run("publish", model, "--name", "tiny", "--version", "2.0")
        #expect(publish.status == 3 && publish.stderr.contains("verify --repair"), "\(publish.stderr)")
        #expect(!FileManager.default.fileExists(atPath: cli.home + "/catalog.sqlite"))
        let repair = try cli.run("verify", "--repair")
        #expect(repair.status == 0, "\(repair.text)\(repair.stderr)")
        #expect(repair.text.contains("alexandria sync"))
        #expect(try cli.run("verify").status == 0)
        // The key is unsynced now: publish waits for the log to come back from peers.
        let again = try cli.run("publish", model, "--name", "tiny", "--version", "2.0")
        #expect(again.status != 0 && again.stderr.contains("alexandria sync"), "\(again.stderr)")
    }

    @Test func anEmptiedOrOlderCatalogIsDamage() throws {
        let (cli, model) = try publishedHome()
        defer { cli.cleanUp() }
        let older = cli.home + "-data/catalog-older.sqlite"
        try FileManager.default.copyItem(atPath: cli.home + "/catalog.sqlite", toPath: older)
        #expect(try cli.run("publish", model, "--name", "tiny", "--version", "1.1").status == 0)
        // An older copy of itself (a backup restored over it, or a lost -wal).
        for suffix in ["-wal", "-shm"] { unlink(cli.home + "/catalog.sqlite" + suffix) }
        unlink(cli.home + "/catalog.sqlite")
        try FileManager.default.copyItem(atPath: older, toPath: cli.home + "/catalog.sqlite")
        let verify = try cli.run("verify")
        #expect(verify.status == 1 && verify.text.contains("older"), "\(verify.text)")
        #expect(try cli.run("status").status == 3)
        // Truncated to 0 bytes.
        truncate(cli.home + "/catalog.sqlite", 0)
        let empty = try cli.run("verify")
        #expect(empty.status == 1 && empty.text.contains("empty"), "\(empty.text)")
        #expect(try cli.run("publish", model, "--name", "tiny", "--version", "3.0").status == 3)
    }

    @Test func aFlippedByteInsideACatalogRowIsFound() throws {
        let (cli, _) = try publishedHome()
        defer { cli.cleanUp() }
        // Every process checkpoints when it closes the catalog: the rows are in catalog.sqlite itself.
        let path = cli.home + "/catalog.sqlite"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        // The first signed envelope's payload (base64) in the file: a value SQLite's structure checks never read.
        let needle = Array("\"payload\":\"".utf8)
        let at = try #require(
            (0..<(bytes.count - needle.count)).first { Array(bytes[$0..<$0 + needle.count]) == needle })
        bytes[at + needle.count + 10] = bytes[at + needle.count + 10] == UInt8(ascii: "A") ? 66 : 65
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let verify = try cli.run("verify")
        #expect(verify.status == 1 && verify.text.contains("catalog"), "\(verify.text)")
        #expect(verify.text.contains("verify --repair"))
    }

    /// Any 32 bytes are a valid node key: a flipped byte would silently make this another node. `node.pub` records
    /// the public half, so verify sees it; a damaged publisher key is reported too.
    @Test func aDamagedNodeKeyOrPublisherKeyIsReported() throws {
        let (cli, _) = try publishedHome()
        defer { cli.cleanUp() }
        #expect(FileManager.default.fileExists(atPath: cli.home + "/keys/node.pub"))
        let key = cli.home + "/keys/node.key"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: key)))
        bytes[7] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: key))
        let verify = try cli.run("verify")
        #expect(verify.status == 1 && verify.text.contains("node.pub"), "\(verify.text)")
        bytes[7] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: key))
        #expect(try cli.run("verify").status == 0)
        truncate(cli.home + "/keys/publishers/acme.pem", 100)
        let publisher = try cli.run("verify")
        #expect(publisher.status == 1 && publisher.text.contains("acme.pem"), "\(publisher.text)")
    }

    @Test func aBrokenConfigNamesTheLineAndTheCommandThatResetsIt() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        let data = randomBytes(10_000, seed: 3)
        #expect(try cli.run("add", try cli.write(data, to: "f.bin")).status == 0)
        let config = cli.home + "/config.toml"
        try Data("[store]\nbudget = \"0\nlock_timeout = 3\n".utf8).write(to: URL(fileURLWithPath: config))
        let broken = try cli.run("ls")
        #expect(broken.status == 3 && broken.stderr.hasPrefix("error: "), "\(broken.stderr)")
        #expect(broken.stderr.contains("config.toml, line 2"), "\(broken.stderr)")
        #expect(broken.stderr.contains("init --reset-config") && !broken.stderr.contains("Error"))
        try Data([0x5B, 0x73, 0x74, 0x6F, 0x72, 0x65, 0x5D, 0x0A, 0xFF, 0x0A]).write(to: URL(fileURLWithPath: config))
        let binary = try cli.run("ls")
        #expect(binary.stderr.contains("line 2") && binary.stderr.contains("init --reset-config"), "\(binary.stderr)")
        let reset = try cli.run("init", "--reset-config")
        #expect(reset.status == 0 && reset.text.contains("config.toml.broken-"))
        let aside = try FileManager.default.contentsOfDirectory(atPath: cli.home).filter {
            $0.hasPrefix("config.toml.broken-")
        }
        #expect(aside.count == 1)
        #expect(Array(try cli.run("cat", ContentHash.of(data).description).stdout) == data)
    }

    /// Two `publish` processes race for one log, many times: every release is published exactly once, at its own
    /// index, and two different folders racing for one release leave exactly one binding and one clear refusal.
    @Test func twoPublishProcessesRacingForOneLog() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        #expect(try cli.run("keys", "generate", "acme").status == 0)
        let a = cli.home + "-data/a"
        let b = cli.home + "-data/b"
        _ = try cli.write(randomBytes(20_000, seed: 1), to: "a/w.bin")
        _ = try cli.write(randomBytes(20_000, seed: 2), to: "b/w.bin")
        let rounds = 6
        for round in 0..<rounds {
            let sameRelease = round % 2 == 1
            let p = try cli.start(["publish", a, "--name", "m", "--version", sameRelease ? "s\(round)" : "a\(round)"])
            let q = try cli.start(["publish", b, "--name", "m", "--version", sameRelease ? "s\(round)" : "b\(round)"])
            var results: [(Int32, String)] = []
            for r in [p, q] {
                _ = r.outPipe.fileHandleForReading.readDataToEndOfFile()
                let err = String(decoding: r.errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                r.process.waitUntilExit()
                results.append((r.process.terminationStatus, err))
            }
            if sameRelease {
                #expect(results.filter { $0.0 == 0 }.count == 1, "round \(round): \(results)")
                #expect(results.contains { $0.0 != 0 && $0.1.contains("already published") }, "\(results)")
            } else {
                #expect(results.allSatisfy { $0.0 == 0 }, "round \(round): \(results)")
            }
        }
        // verify replays the log and checks every stored manifest and binding again.
        let verify = try cli.run("verify")
        #expect(verify.status == 0, "\(verify.text)")
    }
}
