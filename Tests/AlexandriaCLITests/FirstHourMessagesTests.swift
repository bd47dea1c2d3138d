import AlexandriaCore
import Foundation
import Testing

/// What a new user met in the first hour (issue 13 §5), each with the command that showed it.
@Suite("The first hour: messages, exit codes, status, --force", .serialized, .offThePool)
struct FirstHourMessagesTests {
    static func nodeRunning(_ cli: CLI) -> Bool? {
        guard let r = try? cli.run("status", "--json"),
            let o = try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
        else { return nil }
        return o["nodeRunning"] as? Bool
    }

    /// `status` says "stopped" at once after a clean stop, and "not running" at once after the node died (its pid is
    /// gone), not "running" for the seconds until its state goes stale.
    @Test func statusSeesAStopAtOnce() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try cli.run("init").status == 0)
        let node = try NodeProcess(cli: cli)
        #expect(eventually(20) { Self.nodeRunning(cli) == true }, "status sees the running node")
        node.process.terminate()
        node.process.waitUntilExit()
        #expect(Self.nodeRunning(cli) == false)
        #expect(try cli.run("status").text.contains("stopped"))
        // Killed: no chance to say so; the dead pid tells.
        let killed = try NodeProcess(cli: cli)
        #expect(eventually(20) { Self.nodeRunning(cli) == true })
        kill(killed.process.processIdentifier, SIGKILL)
        killed.process.waitUntilExit()
        #expect(Self.nodeRunning(cli) == false)
        #expect(try cli.run("status").text.contains("NOT running"))
    }

    /// Errors from the network library never reach users raw: a refused connection names the address and what to
    /// do, not `SingleConnectionFailure(…) (errno: 111)`.
    @Test func aRefusedConnectionSaysWhereAndWhatToDo() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try cli.run("init").status == 0)
        // A port nothing listens on: bind one, note it, close it.
        let probe = try NodeProcess(cli: cli)
        let port = probe.port
        probe.stop()
        let hash = ContentHash.of(Array("nothing".utf8)).description
        for arguments in [
            ["fetch", hash, "-o", cli.home + "-out", "--peer", "127.0.0.1:\(port)"],
            [
                "fetch", String(repeating: "ab", count: 32) + "/tiny@1.0", "-o", cli.home + "-dir", "--peer",
                "127.0.0.1:\(port)",
            ],
        ] {
            let r = try cli.runCommand(arguments)
            #expect(r.status != 0)
            #expect(r.stderr.contains("cannot connect to 127.0.0.1:\(port)"), "\(r.stderr)")
            #expect(r.stderr.contains("connection refused") && r.stderr.contains("node run"), "\(r.stderr)")
            #expect(!r.stderr.contains("errno") && !r.stderr.contains("SingleConnectionFailure"), "\(r.stderr)")
            #expect(!r.stderr.contains("Error:"), "one prefix: \(r.stderr)")
        }
    }

    /// A publisher with a generated key and a two-file model; returns the release's manifest id.
    static func publish(_ cli: CLI, version: String, seed: UInt64) throws -> String {
        _ = try cli.write(randomBytes(300_000, seed: seed), to: "m\(version)/model.safetensors")
        let dir = (try cli.write(Array("{}".utf8), to: "m\(version)/config.json") as NSString)
            .deletingLastPathComponent
        let r = try cli.run("publish", dir, "--name", "tiny", "--version", version, "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let o = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
        return o?["manifestID"] as? String ?? ""
    }

    /// Exit codes and prefixes: a malformed reference is a usage error (2) like a malformed hash, every error says
    /// `error:` once, and `fetch REF --json` prints JSON.
    @Test func usageErrorsAndPrefixesAreConsistent() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try cli.run("init").status == 0)
        for arguments in [
            ["audit", "not-a-ref"], ["fetch", "acme/tiny", "-o", cli.home + "-x"], ["audit", "sha256:12"],
            ["node", "run", "--bogus"], ["audit", "acme/Bad Name@1"],
        ] {
            let r = try cli.runCommand(arguments)
            #expect(r.status == 2, "\(arguments): \(r.status) \(r.stderr)")
            #expect(r.stderr.hasPrefix("error: ") && !r.stderr.contains("Error:"), "\(arguments): \(r.stderr)")
        }
        #expect(try cli.run("keys", "generate", "acme").status == 0)
        let id = try Self.publish(cli, version: "1.0", seed: 1)
        let r = try cli.run("fetch", "acme/tiny@1.0", "-o", cli.home + "-release", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
        #expect(report?["manifestID"] as? String == id && report?["files"] as? Int == 2, "\(r.text)")
    }

    /// `audit` of a withdrawn release (yanked, or a high-severity advisory) never says "everything holds" with
    /// exit 0: the checks hold, the publisher withdrew it, exit 9. A low-severity advisory is reported, exit 0.
    @Test func auditOfAWithdrawnReleaseExitsNine() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try cli.run("init").status == 0)
        #expect(try cli.run("keys", "generate", "acme").status == 0)
        _ = try Self.publish(cli, version: "1.0", seed: 2)
        _ = try Self.publish(cli, version: "2.0", seed: 3)
        _ = try Self.publish(cli, version: "3.0", seed: 4)
        #expect(try cli.run("advise", "acme/tiny@1.0", "--severity", "low", "--reason", "typo in card").status == 0)
        let low = try cli.run("audit", "acme/tiny@1.0")
        #expect(low.status == 0 && low.text.contains("everything holds"), "\(low.text)")
        #expect(try cli.run("advise", "acme/tiny@2.0", "--severity", "high", "--reason", "backdoor").status == 0)
        let high = try cli.run("audit", "acme/tiny@2.0")
        #expect(high.status == 9 && !high.text.contains("everything holds") && high.text.contains("WITHDREW"))
        #expect(try cli.run("yank", "acme/tiny@3.0", "--reason", "leaked data").status == 0)
        #expect(try cli.run("advise", "acme/tiny@3.0", "--severity", "critical", "--reason", "rce").status == 0)
        let yanked = try cli.run("audit", "acme/tiny@3.0")
        #expect(yanked.status == 9 && !yanked.text.contains("everything holds"), "\(yanked.text)")
        #expect(yanked.text.contains("yanked"))
    }

    /// `fetch -o FILE` never replaces an existing file (a user's own) without --force.
    @Test func fetchRefusesToReplaceAFileWithoutForce() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try cli.run("init").status == 0)
        let data = randomBytes(200_000, seed: 9)
        #expect(try cli.run("add", try cli.write(data, to: "d.bin")).status == 0)
        let mine = try cli.write(Array("my own notes".utf8), to: "notes.txt")
        let address = ContentHash.of(data).description
        let refused = try cli.run("fetch", address, "-o", mine)
        #expect(refused.status == 3 && refused.stderr.contains("--force"), "\(refused.stderr)")
        #expect(FileManager.default.contents(atPath: mine) == Data("my own notes".utf8))
        let forced = try cli.run("fetch", address, "-o", mine, "--force")
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(FileManager.default.contents(atPath: mine) == Data(data))
    }
}
