import AlexandriaCore
import Foundation
import Testing

/// Issue 13 §5, items 2, 7 and 10: short publisher ids, `sync`, and a fetch on a node that has just joined; and what
/// `audit --offline` says of files this node does not hold.
@Suite("The first hour: short ids, sync, fetch before holders are known", .serialized, .offThePool)
struct FirstHourTests {
    /// A home with key `acme` and release tiny@VERSION published; returns the release as `publish --json` prints it.
    func publish(_ cli: CLI, version: String, seed: UInt64) throws -> [String: Any] {
        _ = try cli.write(randomBytes(300_000, seed: seed), to: "m\(version)/model.safetensors")
        let dir =
            (try cli.write(Array("{\"v\": \"\(version)\"}".utf8), to: "m\(version)/config.json") as NSString)
            .deletingLastPathComponent
        let out = try cli.run("publish", dir, "--name", "tiny", "--version", version, "--json")
        #expect(out.status == 0, "\(out.stderr)")
        return try JSONSerialization.jsonObject(with: out.stdout) as! [String: Any]
    }

    @Test func offlineAuditReportsAFileThisNodeDoesNotHoldAsAbsentWithoutFailing() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        _ = try cli.run("keys", "generate", "acme")
        _ = try publish(cli, version: "1.0", seed: 7)
        let weights = "sha256:" + ContentHash.of(randomBytes(300_000, seed: 7)).hex
        #expect(try cli.run("rm", weights).status == 0)
        let offline = try cli.run("audit", "acme/tiny@1.0", "--offline", "--json")
        #expect(offline.status == 0, "\(offline.stderr)")
        let report = try JSONSerialization.jsonObject(with: offline.stdout) as! [String: Any]
        var present: [String: Bool] = [:]
        for f in report["files"] as! [[String: Any]] { present[f["path"] as! String] = f["present"] as? Bool }
        #expect(present == ["model.safetensors": false, "config.json": true], "\(report)")
        #expect(try cli.run("audit", "acme/tiny@1.0", "--offline").text.contains("not held here"))
        // Online, the absent file fails the audit.
        #expect(try cli.run("audit", "acme/tiny@1.0").status == 5)
    }

    @Test func aShortPublisherIdSaysNoPeerWasAskedThenResolvesThroughAPeer() throws {
        let publisher = CLI()
        let fresh = CLI()
        defer {
            publisher.cleanUp()
            fresh.cleanUp()
        }
        _ = try publisher.run("init")
        _ = try fresh.run("init")
        _ = try publisher.run("keys", "generate", "acme")
        let manifest = try publish(publisher, version: "1.0", seed: 1)["manifestID"] as! String
        let keys = try publisher.run("keys", "list", "--json")
        let full = String(decoding: keys.stdout, as: UTF8.self)
        let id = try #require(full.firstMatch(of: /[0-9a-f]{64}/)).output
        let short = String(id.prefix(16))
        let out = fresh.home + "-release"

        // No peer anywhere: the error says the peers were never asked and how to fix it.
        let alone = try fresh.runCommand(["fetch", "\(short)/tiny@1.0", "-o", out])
        #expect(alone.status == 3)
        #expect(alone.stderr.contains("no peer was asked"), "\(alone.stderr)")
        #expect(alone.stderr.contains("--peer HOST:PORT") && alone.stderr.contains("full 64-hex id"), "\(alone.stderr)")

        // With a peer, the 16-hex id is fetched by: the peer resolves it, the answer is checked against it.
        let node = try NodeProcess(cli: publisher)
        defer { node.stop() }
        let fetched = try fresh.runCommand(["fetch", "\(short)/tiny@1.0", "-o", out, "--peer", node.address])
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(fetched.text.contains(manifest), "\(fetched.text)")
        #expect(FileManager.default.contents(atPath: out + "/config.json") == Data("{\"v\": \"1.0\"}".utf8))
        // Now the node has seen the publisher, the short id resolves locally.
        #expect(try fresh.runCommand(["audit", "\(short)/tiny@1.0"]).status == 0)
    }

    @Test func syncBringsAnImportedKeysLogUpToDateSoPublishAppendsAfterIt() throws {
        let origin = CLI()
        let other = CLI()
        defer {
            origin.cleanUp()
            other.cleanUp()
        }
        _ = try origin.run("init")
        _ = try other.run("init")
        _ = try origin.run("keys", "generate", "acme")
        let first = try publish(origin, version: "1.0", seed: 2)
        let pass = try origin.write(Array("a long passphrase\n".utf8), to: "pass.txt")
        let pem = origin.home + "-data/acme.key.pem"
        #expect(try origin.run("keys", "export", "acme", "-o", pem, "--passphrase-file", pass).status == 0)
        #expect(try other.run("keys", "import", pem, "--name", "acme", "--passphrase-file", pass).status == 0)
        let node = try NodeProcess(cli: origin)
        defer { node.stop() }
        // `other` learns release 1.0 (and the log up to it); then the origin appends 1.1, which `other` has not seen.
        let fetched = try other.runCommand(
            ["fetch", first["release"] as! String, "-o", other.home + "-r1", "--peer", node.address])
        #expect(fetched.status == 0, "\(fetched.stderr)")
        _ = try publish(origin, version: "1.1", seed: 3)

        let dir = (try other.write(Array("{}".utf8), to: "m2/config.json") as NSString).deletingLastPathComponent
        let refused = try other.run("publish", dir, "--name", "tiny", "--version", "2.0")
        #expect(refused.status == 2 && refused.stderr.contains("alexandria sync"), "\(refused.stderr)")
        // No peer at all: sync says so.
        let noPeer = try other.run("sync")
        #expect(noPeer.status == 2 && noPeer.stderr.contains("no peer to ask"), "\(noPeer.stderr)")

        let synced = try other.run("sync", "--peer", node.address)
        #expect(synced.status == 0, "\(synced.stderr)")
        #expect(synced.text.contains("log has 2 entries (1 new)"), "\(synced.text)")
        // Publishing now needs no flag and appends after the origin's entries: no fork.
        let published = try other.run("publish", dir, "--name", "tiny", "--version", "2.0", "--json")
        #expect(published.status == 0, "\(published.stderr)")
        let result = try JSONSerialization.jsonObject(with: published.stdout) as! [String: Any]
        #expect(result["logIndex"] as? Int == 2, "\(result)")
        #expect(try other.run("audit", "acme/tiny@2.0").status == 0)
    }

    @Test func syncRefusesALogThatForkedFromThisNodesCopy() throws {
        let origin = CLI()
        let other = CLI()
        defer {
            origin.cleanUp()
            other.cleanUp()
        }
        _ = try origin.run("init")
        _ = try other.run("init")
        _ = try origin.run("keys", "generate", "acme")
        let first = try publish(origin, version: "1.0", seed: 8)
        let pass = try origin.write(Array("a long passphrase\n".utf8), to: "pass.txt")
        let pem = origin.home + "-data/acme.key.pem"
        #expect(try origin.run("keys", "export", "acme", "-o", pem, "--passphrase-file", pass).status == 0)
        #expect(try other.run("keys", "import", pem, "--name", "acme", "--passphrase-file", pass).status == 0)
        let node = try NodeProcess(cli: origin)
        defer { node.stop() }
        let fetched = try other.runCommand(
            ["fetch", first["release"] as! String, "-o", other.home + "-r1", "--peer", node.address])
        #expect(fetched.status == 0, "\(fetched.stderr)")
        // Both sides append entry 1: the origin 1.1, the other (forcing it) 1.5. The key now signed two histories.
        _ = try publish(origin, version: "1.1", seed: 9)
        let dir = (try other.write(Array("{}".utf8), to: "m2/config.json") as NSString).deletingLastPathComponent
        #expect(
            try other.run("publish", dir, "--name", "tiny", "--version", "1.5", "--assume-log-current").status == 0)
        let sync = try other.run("sync", "--key", "acme", "--peer", node.address)
        #expect(sync.status == 3 && sync.stderr.contains("fork"), "\(sync.stdout) \(sync.stderr)")
        // And publishing with the key is refused again.
        let dir2 = (try other.write(Array("{}".utf8), to: "m3/config.json") as NSString).deletingLastPathComponent
        #expect(try other.run("publish", dir2, "--name", "tiny", "--version", "1.6").status == 2)
    }

    @Test func aRunningNodeThatGossipedTheLogSyncsWithNoArguments() throws {
        let origin = CLI()
        let other = CLI()
        defer {
            origin.cleanUp()
            other.cleanUp()
        }
        _ = try origin.run("init")
        _ = try other.run("init")
        _ = try origin.run("keys", "generate", "acme")
        _ = try publish(origin, version: "1.0", seed: 5)
        _ = try publish(origin, version: "1.1", seed: 6)
        let pass = try origin.write(Array("a long passphrase\n".utf8), to: "pass.txt")
        let pem = origin.home + "-data/acme.key.pem"
        #expect(try origin.run("keys", "export", "acme", "-o", pem, "--passphrase-file", pass).status == 0)
        #expect(try other.run("keys", "import", pem, "--name", "acme", "--passphrase-file", pass).status == 0)
        let source = try NodeProcess(cli: origin)
        defer { source.stop() }
        let node = try NodeProcess(cli: other, extra: ["--peer", source.address, "--no-mirror"])
        defer { node.stop() }
        // The running node learns the whole log by gossip.
        let deadline = Date().addingTimeInterval(15)
        while try other.run("audit", "acme/tiny@1.1", "--offline").status != 0 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
        }
        // Still refused: the key's flag knows nothing of gossip. `sync` with no argument asks the node's peers.
        let dir = (try other.write(Array("{}".utf8), to: "m2/config.json") as NSString).deletingLastPathComponent
        #expect(try other.run("publish", dir, "--name", "tiny", "--version", "2.0").status == 2)
        let synced = try other.run("sync")
        #expect(synced.status == 0, "\(synced.stderr)")
        #expect(synced.text.contains("log has 2 entries"), "\(synced.text)")
        let published = try other.run("publish", dir, "--name", "tiny", "--version", "2.0", "--json")
        #expect(published.status == 0, "\(published.stderr)")
        let result = try JSONSerialization.jsonObject(with: published.stdout) as! [String: Any]
        #expect(result["logIndex"] as? Int == 2, "\(result)")
    }

    @Test func aFetchWithNoPeerWaitsForTheJustStartedNodeInsteadOfFailing() throws {
        let publisher = CLI()
        let joiner = CLI()
        defer {
            publisher.cleanUp()
            joiner.cleanUp()
        }
        _ = try publisher.run("init")
        _ = try joiner.run("init")
        _ = try publisher.run("keys", "generate", "acme")
        let manifest = try publish(publisher, version: "1.0", seed: 4)["manifestID"] as! String
        let source = try NodeProcess(cli: publisher)
        defer { source.stop() }
        // The joiner's node has just started (serving only, it replicates nothing by itself); its first peer comes
        // from --peer, so right now the home has no peer table, no holders, and no configured peer.
        let joined = try NodeProcess(cli: joiner, extra: ["--peer", source.address, "--no-mirror"])
        defer { joined.stop() }
        let out = joiner.home + "-release"
        let fetched = try joiner.runCommand(["fetch", manifest, "-o", out])
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(!fetched.stderr.contains("no peer was given"), "\(fetched.stderr)")
        #expect(FileManager.default.contents(atPath: out + "/config.json") == Data("{\"v\": \"1.0\"}".utf8))
    }
}
