import AlexandriaCore
import Foundation
import Testing

/// A `node run` process on a free loopback port.
final class NodeProcess {
    let cli: CLI
    let process: Process
    let port: Int

    /// What the node logged up to "listening" (or until it exited).
    private(set) var startupLog = ""

    init(cli: CLI, extra: [String] = [], port: Int? = nil, wrapper: [String] = []) throws {
        self.cli = cli
        self.port = port ?? freeLoopbackPort()
        let p = Process()
        (p.executableURL, p.arguments) = cli.command(
            ["node", "run", "--home", cli.home, "--listen", "127.0.0.1:\(self.port)"] + extra, wrapper: wrapper)
        p.standardOutput = FileHandle.nullDevice
        let log = Pipe()
        p.standardError = log
        try p.run()
        process = p
        // Wait until it logs that it listens.
        var seen = Data()
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            let more = log.fileHandleForReading.availableData
            seen += more
            if String(decoding: seen, as: UTF8.self).contains("listening") || (more.isEmpty && !p.isRunning) { break }
        }
        startupLog = String(decoding: seen, as: UTF8.self)
        DispatchQueue.global().async { _ = log.fileHandleForReading.readDataToEndOfFile() }
    }

    var address: String { "127.0.0.1:\(port)" }

    /// SIGTERM, then waits up to 15 s for a graceful exit; a node that hangs is killed and the test fails.
    func stop() {
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("node run did not stop within 15 s of SIGTERM")
            // Bounded: once, a SIGKILLed node stayed a zombie that Foundation never reaped, and an unbounded
            // waitUntilExit held the whole test run.
            let killed = Date().addingTimeInterval(15)
            while process.isRunning && Date() < killed { Thread.sleep(forTimeInterval: 0.05) }
            return
        }
        process.waitUntilExit()
    }
}

@Suite("Nodes as separate processes on loopback", .serialized, .offThePool)
struct NodeTests {
    @Test func fetchFromThreeNodesVerifiedAndServedOnward() throws {
        let data = randomBytes(24 << 20, seed: 77)
        let address = ContentHash.of(data).description
        var clis: [CLI] = []
        var nodes: [NodeProcess] = []
        defer {
            nodes.forEach { $0.stop() }
            clis.forEach { $0.cleanUp() }
        }
        for i in 0..<3 {
            let cli = CLI()
            clis.append(cli)
            _ = try cli.run("init")
            #expect(try cli.run("add", try cli.write(data, to: "d\(i).bin")).status == 0)
            // Each serves at 10 MB/s, so one fetch has to use all three to finish quickly.
            nodes.append(try NodeProcess(cli: cli, extra: ["--upload-rate", "10MB"]))
        }
        let fetcher = CLI()
        clis.append(fetcher)
        _ = try fetcher.run("init")
        let out = fetcher.home + "-out.bin"
        let r = try fetcher.runCommand(
            ["fetch", address, "-o", out, "--json"] + nodes.flatMap { ["--peer", $0.address] })
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONSerialization.jsonObject(with: r.stdout) as! [String: Any]
        let perPeer = report["peers"] as! [String: Int]
        #expect(perPeer.values.filter { $0 > 0 }.count >= 2, "\(perPeer)")
        #expect(FileManager.default.contents(atPath: out) == Data(data))
        // What fetch brought in is in this home's store, so its node serves it from then on.
        let onward = try NodeProcess(cli: fetcher)
        nodes.append(onward)
        let last = CLI()
        clis.append(last)
        _ = try last.run("init")
        let second = try last.runCommand(["fetch", address, "-o", last.home + "-out.bin", "--peer", onward.address])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try last.run("verify").status == 0)
    }

    @Test func aFetchedFileThatIsChangedOrDeletedIsNeverServedWrong() throws {
        let data = randomBytes(6 << 20, seed: 79)
        let address = ContentHash.of(data).description
        let origin = CLI()
        let middle = CLI()
        let last = CLI()
        defer { [origin, middle, last].forEach { $0.cleanUp() } }
        for cli in [origin, middle, last] { _ = try cli.run("init") }
        _ = try origin.run("add", try origin.write(data, to: "d.bin"))
        let source = try NodeProcess(cli: origin)
        defer { source.stop() }
        // The middle node fetches (its store now holds the chunks by reference to the output) and serves onward.
        let out = middle.home + "-out.bin"
        #expect(try middle.runCommand(["fetch", address, "-o", out, "--peer", source.address]).status == 0)
        source.stop()
        let serving = try NodeProcess(cli: middle)
        defer { serving.stop() }
        let served = last.home + "-served.bin"
        let first = try last.runCommand(["fetch", address, "-o", served, "--peer", serving.address])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(FileManager.default.contents(atPath: served) == Data(data))
        // Change one byte in the middle of the middle node's output file (same size, same name).
        let handle = try #require(FileHandle(forUpdatingAtPath: out))
        try handle.seek(toOffset: 3 << 20)
        try handle.write(contentsOf: Data([data[3 << 20] ^ 0x5a]))
        try handle.close()
        // A node that has never seen the file asks the middle one, which must not serve the changed chunk.
        let fresh = CLI()
        defer { fresh.cleanUp() }
        _ = try fresh.run("init")
        let again = fresh.home + "-again.bin"
        let second = try fresh.runCommand([
            "fetch", address, "-o", again, "--peer", serving.address, "--stall-timeout", "2",
        ])
        #expect(second.status != 0, "a changed file must not be served")
        #expect(!FileManager.default.fileExists(atPath: again))
        let cat = try middle.runCommand(["cat", address])
        #expect(cat.status != 0 && cat.stdout.count < data.count, "cat must not print the changed bytes")
        let verify = try middle.runCommand(["verify"])
        #expect(verify.status == 1 && verify.text.contains("INCOMPLETE"), "\(verify.text)")
        // Deleted: every chunk reads as missing, `verify` says which file is incomplete, nothing else is lost.
        try FileManager.default.removeItem(atPath: out)
        let verifyGone = try middle.runCommand(["verify"])
        #expect(verifyGone.status == 1 && verifyGone.text.contains("INCOMPLETE"), "\(verifyGone.text)")
        #expect(try middle.runCommand(["cat", address]).status != 0)
        // Fetching it again repairs the store (the chunks come back, linked to the new output).
        let lastNode = try NodeProcess(cli: last)
        defer { lastNode.stop() }
        let back = try middle.runCommand(["fetch", address, "-o", out, "--peer", lastNode.address])
        #expect(back.status == 0, "\(back.stderr)")
        #expect(try middle.runCommand(["verify"]).status == 0)
    }

    @Test func anInterruptedFetchResumesWithoutDownloadingVerifiedChunksAgain() throws {
        let data = randomBytes(40 << 20, seed: 78)
        let address = ContentHash.of(data).description
        let server = CLI()
        let client = CLI()
        defer {
            server.cleanUp()
            client.cleanUp()
        }
        _ = try server.run("init")
        _ = try server.run("add", try server.write(data, to: "d.bin"))
        let node = try NodeProcess(cli: server, extra: ["--upload-rate", "20MB"])
        defer { node.stop() }
        _ = try client.run("init")
        let out = client.home + "-out.bin"
        let first = try client.start(["fetch", address, "-o", out, "--peer", node.address])
        Thread.sleep(forTimeInterval: 1.2)
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        #expect(!FileManager.default.fileExists(atPath: out))
        let resumed = try client.runCommand(["fetch", address, "-o", out, "--peer", node.address, "--json"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let report = try JSONSerialization.jsonObject(with: resumed.stdout) as! [String: Any]
        let downloaded = report["bytesDownloaded"] as! Int
        let local = report["bytesFromLocalStore"] as! Int
        #expect(local > 0 && downloaded < data.count && downloaded + local >= data.count, "\(report)")
        #expect(FileManager.default.contents(atPath: out) == Data(data))
    }

    @Test func aReleaseIsFetchedByNameFromAPeerAndAuditsThere() throws {
        let publisher = CLI()
        let mirror = CLI()
        defer {
            publisher.cleanUp()
            mirror.cleanUp()
        }
        _ = try publisher.run("init")
        _ = try mirror.run("init")
        _ = try publisher.run("keys", "generate", "acme")
        _ = try publisher.write(randomBytes(3 << 20, seed: 5), to: "m/model.safetensors")
        let dir = (try publisher.write(Array("{}".utf8), to: "m/config.json") as NSString).deletingLastPathComponent
        let published = try publisher.run("publish", dir, "--name", "tiny", "--version", "1.0", "--json")
        let release = (try JSONSerialization.jsonObject(with: published.stdout) as! [String: Any])["release"] as! String
        let node = try NodeProcess(cli: publisher)
        defer { node.stop() }
        let out = mirror.home + "-release"
        let fetched = try mirror.runCommand(["fetch", release, "-o", out, "--peer", node.address])
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(FileManager.default.contents(atPath: out + "/config.json") == Data("{}".utf8))
        let audit = try mirror.runCommand(["audit", release])
        #expect(audit.status == 0, "\(audit.text)")
        // A peer that answers for another publisher is refused: ask for a made-up publisher id.
        let bogus = String(repeating: "ab", count: 32) + "/tiny@1.0"
        #expect(try mirror.runCommand(["fetch", bogus, "-o", out + "2", "--peer", node.address]).status != 0)
    }

    @Test func sigtermStopsTheNodeGracefully() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        let node = try NodeProcess(cli: cli)
        node.process.terminate()
        node.process.waitUntilExit()
        #expect(node.process.terminationReason == .exit)
        #expect(node.process.terminationStatus == 0)
        #expect(try cli.run("verify").status == 0)
    }
}

@Suite("One daemon per home", .serialized, .offThePool)
struct NodeLockTests {
    @Test func aSecondDaemonOnAHomeIsRefusedAndTheLockDiesWithItsHolder() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        let first = try NodeProcess(cli: cli)
        let second = try cli.run("node", "run", "--listen", "127.0.0.1:\(freeLoopbackPort())")
        #expect(second.status == 3)
        #expect(
            second.stderr.contains("already running")
                && second.stderr.contains("pid \(first.process.processIdentifier)"))
        // kill -9: the kernel drops the flock, so the next daemon starts.
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        let third = try NodeProcess(cli: cli)
        #expect(third.process.isRunning)
        third.stop()
        #expect(third.process.terminationStatus == 0)
    }
}
