import AlexandriaCore
import Foundation
import Testing

/// What a new user met in the first hour (issue 13 §5), each with the command that showed it.
@Suite("The first hour", .serialized)
struct FirstHourTests {
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
}
