import AlexandriaCore
import Foundation
import Testing

/// The independent adversarial client in Tests/adversary (Python, written from Protocol/wire-v1.md and
/// gossip-v1.md alone), run as a process against a real `node run`. Each call prints one JSON object per line.
enum Adversary {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("adversary/wire_client.py").path

    static func start(_ arguments: [String]) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.standardError
        try process.run()
        return (process, out)
    }

    /// Runs an attack to its end and returns its JSON lines.
    static func run(_ arguments: [String]) throws -> [[String: Any]] {
        let (process, out) = try start(arguments)
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "wire_client.py \(arguments.joined(separator: " ")) failed")
        return lines(data)
    }

    /// Reads the first JSON line of a running attack (one that goes on holding its connections).
    static func firstLine(_ out: Pipe) -> [String: Any] {
        var data = Data()
        let deadline = Date().addingTimeInterval(60)
        while !data.contains(UInt8(ascii: "\n")) && Date() < deadline {
            let more = out.fileHandleForReading.availableData
            if more.isEmpty { break }
            data += more
        }
        return lines(data).first ?? [:]
    }

    static func lines(_ data: Data) -> [[String: Any]] {
        String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }
}

/// A node whose config.toml has `settings` (lines `key = value` of the default config, replaced) and `test` under
/// [test].
func wireNode(node settings: String = "", test: String = "", file: [UInt8]? = nil) throws -> (CLI, NodeProcess) {
    let cli = CLI()
    _ = try cli.run("init")
    let path = cli.home + "/config.toml"
    var config = try String(contentsOfFile: path, encoding: .utf8)
    for line in settings.split(separator: "\n") {
        // Each setting replaces the default's line of the same key.
        let key = line.split(separator: "=")[0].trimmingCharacters(in: .whitespaces)
        config = config.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasPrefix(key + " = ") ? String(line) : String($0)
        }.joined(separator: "\n")
    }
    if !test.isEmpty { config += "\n[test]\n" + test }
    try config.write(toFile: path, atomically: true, encoding: .utf8)
    if let file { #expect(try cli.run("add", try cli.write(file, to: "file.bin")).status == 0) }
    return (cli, try NodeProcess(cli: cli, extra: ["--no-mirror"]))
}

/// Issue 10, section 3: the node holds to wire-v1 and gossip-v1 against a client that does not.
@Suite("The wire holds to its spec against an adversarial client", .serialized, .offThePool)
struct WireSpecTests {
    @Test func silentAndTricklingConnectionsAreClosedAfterTheIdleTimeout() throws {
        let (cli, node) = try wireNode(test: "idle_timeout = \"2s\"\n")
        defer {
            node.stop()
            cli.cleanUp()
        }
        let port = ["--port", "\(node.port)", "--wait", "10"]
        let (silent, silentOut) = try Adversary.start(["silent"] + port)
        let trickle = try Adversary.run(["trickle", "--interval", "0.5"] + port)
        let quiet = Adversary.firstLine(silentOut)
        silent.waitUntilExit()
        // Both closed after the 2 s timeout, though the trickler sent a byte every half second.
        for result in [quiet, trickle.first ?? [:]] {
            let closed = result["closed_after"] as? Double
            #expect(closed != nil, "\(result)")
            #expect((1.5...6).contains(closed ?? 0), "\(result)")
        }
        #expect((trickle.first?["bytes_sent"] as? Int ?? 0) >= 3)
    }

    @Test func pastTheOutstandingLimitTheNodeSendsOverloadedAndCloses() throws {
        let data = randomBytes(3 << 20, seed: 1010)
        let (cli, node) = try wireNode(file: data)
        defer {
            node.stop()
            cli.cleanUp()
        }
        let address = ContentHash.of(data).hex
        let within = try Adversary.run(
            ["outstanding", "--port", "\(node.port)", "--address", address, "--ids", "256", "--pause", "0.5"])
        #expect(within.first?["answers"] as? Int == 256, "\(within)")
        #expect(within.first?["error"] is NSNull, "\(within)")
        let over = try Adversary.run(
            ["outstanding", "--port", "\(node.port)", "--address", address, "--ids", "384", "--pause", "0.5"])
        #expect(over.first?["error"] as? Int == 6, "ERROR(overloaded) expected: \(over)")
        #expect(over.first?["closed"] as? Bool == true, "\(over)")
        #expect((over.first?["answers"] as? Int ?? 384) < 384, "\(over)")
    }

    @Test func plainClientsAreCappedPerAddressAndInAllAndAFetchStillGetsThrough() throws {
        let data = randomBytes(2 << 20, seed: 1011)
        let (cli, node) = try wireNode(node: "clients = 8\nclients_per_address = 4\n", file: data)
        let fetcher = CLI()
        var floods: [Process] = []
        defer {
            // The node is stopped first, with the flood's connections still open: it must exit regardless.
            node.stop()
            for flood in floods {
                // SIGKILL: a child of the test runner may inherit SIGTERM ignored.
                kill(flood.processIdentifier, SIGKILL)
                flood.waitUntilExit()
            }
            cli.cleanUp()
            fetcher.cleanUp()
        }
        var results: [[String: Any]] = []
        for source in ["127.0.0.2", "127.0.0.3"] {
            let (process, out) = try Adversary.start(
                ["flood", "--port", "\(node.port)", "--count", "20", "--source", source, "--hold", "60"])
            floods.append(process)
            results.append(Adversary.firstLine(out))
        }
        for result in results {
            // 20 authenticated idle clients from one address: 4 kept, the rest told ERROR(overloaded).
            #expect(result["alive"] as? Int == 4, "\(result)")
            #expect(result["overloaded"] as? Int == 16, "\(result)")
        }
        // Every client slot is taken; an honest fetch from another address still gets one, and is served.
        _ = try fetcher.run("init")
        let out = fetcher.home + "-out.bin"
        let r = try fetcher.runCommand(["fetch", ContentHash.of(data).description, "-o", out, "--peer", node.address])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.contents(atPath: out) == Data(data))
    }

    @Test func malformedFramesGetTheMatchingErrorBeforeTheClose() throws {
        let (cli, node) = try wireNode()
        defer {
            node.stop()
            cli.cleanUp()
        }
        let results = try Adversary.run(["malformed", "--case", "all", "--port", "\(node.port)", "--wait", "3"])
        #expect(results.count == 14)
        for result in results {
            #expect(result["error"] as? Int == result["expected"] as? Int, "\(result)")
            #expect(result["closed"] as? Bool == true, "\(result)")
        }
    }

    @Test func peersAnswersAreBoundedAndCannotSteerDials() throws {
        let (cli, node) = try wireNode()
        defer {
            node.stop()
            cli.cleanUp()
        }
        let victimPort = freeLoopbackPort()
        let victimArgs = ["--victim-host", "127.0.0.9", "--victim-port", "\(victimPort)", "--victim-ports", "16"]
        let (listener, listenerOut) = try Adversary.start(["listen", "--wait", "8"] + victimArgs)
        #expect(Adversary.firstLine(listenerOut)["listening"] as? Int ?? 0 > 0)
        // The attacker answers the node's PEERS_QUERY with 64 addresses (8 of them hostile), then sends 19 PEERS
        // nobody asked for: 1,280 addresses that all point at the victim.
        let attack = try Adversary.run(
            ["peers", "--port", "\(node.port)", "--messages", "20", "--hostile", "--wait", "3"] + victimArgs)
        let result = attack.first ?? [:]
        #expect(result["queries"] as? Int ?? 0 >= 1, "\(result)")
        #expect(result["error"] as? Int == 1, "an unsolicited PEERS is a protocolViolation: \(result)")
        let victim = Adversary.lines(listenerOut.fileHandleForReading.readDataToEndOfFile()).first ?? [:]
        listener.waitUntilExit()
        // Dials the attacker steered: its budget of 8 at once and one per 5 s, over about 11 s; not one per name.
        let dials = victim["accepted"] as? Int ?? -1
        #expect((1...12).contains(dials), "\(victim)")
        Thread.sleep(forTimeInterval: 2.5)
        let table =
            (try? JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: cli.home + "/peers.json")))) as? [[String: Any]] ?? []
        let named = table.filter { $0["source"] as? String == result["key"] as? String }
        #expect(!named.isEmpty && named.count <= 64, "\(named.count) entries from the attacker")
        for entry in table {
            let host = entry["host"] as? String ?? ""
            #expect(host == "127.0.0.9" || host == "127.0.0.1", "a hostile address was kept: \(entry)")
            #expect(entry["port"] as? Int ?? 0 > 0, "\(entry)")
        }
    }
}
