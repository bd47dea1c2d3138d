import AlexandriaCore
import Foundation
import Testing

/// Issue 13 §4 and §5.5: `fetch REF -o DIR` writes each byte once (the store links the folder's files), shows
/// progress on a terminal, and is all or nothing: a refused or failed fetch leaves the folder as it was.
@Suite("Release fetch into a folder", .serialized)
struct ReleaseFetchTests {
    static let weights = randomBytes(6 << 20, seed: 1313)
    static let config = Array("{\"hidden_size\": 64}".utf8)

    /// A home with key `acme` and release tiny@1.0 (`config.json`, `weights/model.safetensors`, an empty
    /// `weights/empty.txt`); returns the release's name with the full publisher id.
    static func publish(_ cli: CLI) throws -> String {
        _ = try cli.run("init")
        _ = try cli.run("keys", "generate", "acme")
        _ = try cli.write(weights, to: "m/weights/model.safetensors")
        _ = try cli.write([], to: "m/weights/empty.txt")
        let dir = (try cli.write(config, to: "m/config.json") as NSString).deletingLastPathComponent
        let out = try cli.run("publish", dir, "--name", "tiny", "--version", "1.0", "--json")
        #expect(out.status == 0, "\(out.stderr)")
        let json = try JSONSerialization.jsonObject(with: out.stdout) as! [String: Any]
        return json["release"] as! String
    }

    static func packBytes(_ cli: CLI) throws -> Int {
        let status = try cli.run("status", "--json")
        let json = try JSONSerialization.jsonObject(with: status.stdout) as! [String: Any]
        return (json["store"] as? [String: Any])?["packBytes"] as? Int ?? json["packBytes"] as? Int ?? -1
    }

    static func leftovers(beside dir: String) throws -> [String] {
        let parent = (dir as NSString).deletingLastPathComponent
        let prefix = "." + (dir as NSString).lastPathComponent + ".alexandria-staging-"
        return try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.hasPrefix(prefix) }
    }

    @Test func aReleaseIsWrittenOnceLinkedIntoTheStoreWithProgressOnATerminal() throws {
        let server = CLI()
        let client = CLI()
        let out = client.home + "-release"
        defer {
            server.cleanUp()
            client.cleanUp()
            try? FileManager.default.removeItem(atPath: out)
        }
        let release = try Self.publish(server)
        _ = try client.run("init")
        // 6 MiB at 4 MB/s: progress for about 1.5 s.
        let node = try NodeProcess(cli: server, extra: ["--upload-rate", "4MB"])
        defer { node.stop() }
        let command = [CLI.binary, "fetch", release, "-o", out, "--peer", node.address, "--home", client.home]
            .map { "'" + $0 + "'" }.joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-q", "-e", "-c", "stty cols 80 rows 24; exec \(command)", "/dev/null"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let captured = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(captured)")

        #expect(FileManager.default.contents(atPath: out + "/weights/model.safetensors") == Data(Self.weights))
        #expect(FileManager.default.contents(atPath: out + "/config.json") == Data(Self.config))
        #expect(FileManager.default.contents(atPath: out + "/weights/empty.txt") == Data())
        #expect(try Self.leftovers(beside: out).isEmpty)
        // Progress: redraws of one line labelled with the release, fitting 80 columns, bytes per second.
        let lines = ProgressTests.draws(captured)
        #expect(lines.count >= 3, "too few redraws: \(captured.debugDescription)")
        for line in lines { #expect(line.count <= 79, "\(line)") }
        #expect(lines.contains { $0.hasPrefix("tiny@1.0") && $0.contains("/s") }, "\(lines)")
        #expect(captured.contains("bytes written once"), "\(captured)")

        // Written once: the store holds the received chunks by reference to the folder's files, not in its packs.
        let packs = try Self.packBytes(client)
        #expect(packs >= 0 && packs < Self.weights.count / 10, "the packs hold \(packs) bytes")
        let verify = try client.run("verify")
        #expect(verify.status == 0, "\(verify.text)\(verify.stderr)")
        // The node serves the release on from the folder's files.
        let server2 = try NodeProcess(cli: client)
        defer { server2.stop() }
        let third = CLI()
        defer {
            third.cleanUp()
            try? FileManager.default.removeItem(atPath: third.home + "-w")
        }
        _ = try third.run("init")
        let address = "sha256:" + ContentHash.of(Self.weights).hex
        let again = try third.runCommand(["fetch", address, "-o", third.home + "-w", "--peer", server2.address])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(FileManager.default.contents(atPath: third.home + "-w") == Data(Self.weights))
    }

    @Test func aRefusedOrFailedReleaseFetchLeavesTheFolderAsItWas() throws {
        let server = CLI()
        let client = CLI()
        let out = client.home + "-release"
        let outside = client.home + "-outside"
        defer {
            server.cleanUp()
            client.cleanUp()
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: outside)
        }
        let release = try Self.publish(server)
        _ = try client.run("init")
        let node = try NodeProcess(cli: server)
        defer { node.stop() }
        let fm = FileManager.default

        // A link planted where the release has a folder: refused before anything is written, config.json included.
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
        try fm.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: out + "/weights", withDestinationPath: outside)
        let planted = try client.runCommand(["fetch", release, "-o", out, "--peer", node.address])
        #expect(planted.status == 3, "\(planted.text)")
        #expect(planted.stderr.contains("\(out)/weights is a link"), "\(planted.stderr)")
        #expect(planted.stderr.contains("nothing was written"), "\(planted.stderr)")
        #expect(try fm.contentsOfDirectory(atPath: out) == ["weights"])
        #expect(try fm.contentsOfDirectory(atPath: outside).isEmpty)
        #expect(try Self.leftovers(beside: out).isEmpty)
        // --force replaces files, never writes through a folder link.
        let forced = try client.runCommand(["fetch", release, "-o", out, "--peer", node.address, "--force"])
        #expect(forced.status == 3 && forced.stderr.contains("is a link"), "\(forced.stderr)")
        #expect(try fm.contentsOfDirectory(atPath: outside).isEmpty)
        try fm.removeItem(atPath: out + "/weights")

        // The user's own config.json: refused without --force (and nothing else written), replaced with it.
        let mine = Data("my own notes".utf8)
        fm.createFile(atPath: out + "/config.json", contents: mine)
        let existing = try client.runCommand(["fetch", release, "-o", out, "--peer", node.address])
        #expect(existing.status == 3 && existing.stderr.contains("--force"), "\(existing.stderr)")
        #expect(fm.contents(atPath: out + "/config.json") == mine)
        #expect(try fm.contentsOfDirectory(atPath: out) == ["config.json"])
        let replaced = try client.runCommand(["fetch", release, "-o", out, "--peer", node.address, "--force"])
        #expect(replaced.status == 0, "\(replaced.stderr)")
        #expect(fm.contents(atPath: out + "/config.json") == Data(Self.config))
        #expect(fm.contents(atPath: out + "/weights/model.safetensors") == Data(Self.weights))
        // Fetching again into the complete folder keeps every file and needs no --force.
        let kept = try client.runCommand(["fetch", release, "-o", out, "--peer", node.address])
        #expect(kept.status == 0 && kept.text.contains("3 already there and kept"), "\(kept.text)\(kept.stderr)")
        #expect(try Self.leftovers(beside: out).isEmpty)

        // A fetch that fails midway (no peer holds the weights any more): no folder, nothing half-written.
        let fresh = CLI()
        let failedOut = fresh.home + "-release"
        defer {
            fresh.cleanUp()
            try? fm.removeItem(atPath: failedOut)
        }
        _ = try fresh.run("init")
        node.stop()
        #expect(try server.run("rm", "sha256:" + ContentHash.of(Self.weights).hex).status == 0)
        let node2 = try NodeProcess(cli: server)
        defer { node2.stop() }
        let failed = try fresh.runCommand(["fetch", release, "-o", failedOut, "--peer", node2.address])
        #expect(failed.status != 0, "\(failed.text)")
        #expect(!fm.fileExists(atPath: failedOut), "\(failed.stderr)")
        // What was received waits in the staging folder for the next attempt, and the error says where.
        let staged = try Self.leftovers(beside: failedOut)
        #expect(staged.count == 1 && failed.stderr.contains(staged.first ?? "?"), "\(staged) \(failed.stderr)")
        for name in staged {
            try? fm.removeItem(atPath: (failedOut as NSString).deletingLastPathComponent + "/" + name)
        }
    }
}

/// Issue 13 §5.10: a node that has just joined learns a release through a peer that does not hold it; a fetch with
/// no --peer at that moment waits for the holders instead of failing.
@Suite("Fetch on a node that has just joined", .serialized)
struct JustJoinedFetchTests {
    @Test func aReleaseKnownBeforeItsHoldersIsFetchedWithNoPeerGiven() throws {
        let holder = CLI()
        let relay = CLI()
        let joiner = CLI()
        let out = joiner.home + "-release"
        defer {
            for cli in [holder, relay, joiner] { cli.cleanUp() }
            try? FileManager.default.removeItem(atPath: out)
        }
        let release = try ReleaseFetchTests.publish(holder)
        _ = try relay.run("init")
        _ = try joiner.run("init")
        let h = try NodeProcess(cli: holder)
        defer { h.stop() }
        // The relay serves and gossips only: it never holds the release.
        let r = try NodeProcess(cli: relay, extra: ["--peer", h.address, "--no-mirror"])
        defer { r.stop() }
        let j = try NodeProcess(cli: joiner, extra: ["--peer", r.address, "--no-mirror"])
        defer { j.stop() }
        // As soon as the joiner is connected (to the relay) and its catalog has the release (by gossip through the
        // relay), fetch it with no --peer.
        var known = false
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let status = try joiner.run("status", "--json")
            let json = (try? JSONSerialization.jsonObject(with: status.stdout) as? [String: Any]) ?? [:]
            let connected = ((json["node"] as? [String: Any])?["peers"] as? [Any])?.count ?? 0
            if (json["releases"] as? Int ?? 0) >= 1, connected >= 1 {
                known = true
                break
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let seen = try joiner.run("status").text
        try #require(known, "the joiner never learned the release: \(seen)")
        let fetched = try joiner.runCommand(["fetch", release, "-o", out])
        #expect(fetched.status == 0, "\(fetched.text)\(fetched.stderr)")
        #expect(!fetched.stderr.contains("no peer was given"), "\(fetched.stderr)")
        #expect(
            FileManager.default.contents(atPath: out + "/weights/model.safetensors") == Data(ReleaseFetchTests.weights))
    }
}
