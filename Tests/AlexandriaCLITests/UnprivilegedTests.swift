import AlexandriaCore
import Foundation
import Testing

/// What root hides. A node deployed by the systemd unit (`User=alexandria`), a container or a person on a laptop is
/// not root, and root gets past socket options, file modes, privileged ports and descriptor limits that stop anyone
/// else. These tests run the node as an unprivileged user: themselves in CI (Tests/run.sh runs the test bundle under
/// setpriv), and `nobody` through setpriv when the test runner is root.
@Suite("Running as an unprivileged user", .serialized, .offThePool)
struct UnprivilegedTests {
    static var isRoot: Bool { geteuid() == 0 }

    /// Tests/run.sh says which uid it runs the tests as; under CI it must not be root, and no capability may be
    /// left (a capability is root's power in part: CAP_NET_ADMIN is what hid the SO_DEBUG bug).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["ALEXANDRIA_CI_UID"] != nil))
    func theTestRunIsUnprivilegedUnderCI() throws {
        let env = ProcessInfo.processInfo.environment
        #expect(String(getuid()) == env["ALEXANDRIA_CI_UID"])
        if env["CI"] == "true" {
            #expect(geteuid() != 0, "CI must run the tests as an unprivileged user (Tests/unprivileged.sh)")
        }
        if geteuid() != 0 {
            let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            let effective = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
            #expect(effective?.split(separator: "\t").last == "0000000000000000", "\(effective ?? "")")
        }
    }

    /// The node (uid from /proc) serves a fetch, gossips a release to a peer and stops cleanly on SIGTERM, all as
    /// a user that is not root, with no capabilities and a soft descriptor limit of 1,024 (a shell's default).
    @Test func aNodeRunByAnUnprivilegedUserServesAFetchGossipsAndStopsCleanly() throws {
        let publisher = CLI(unprivileged: true)
        let peer = CLI(unprivileged: true)
        let client = CLI(unprivileged: true)
        defer { [publisher, peer, client].forEach { $0.cleanUp() } }
        for cli in [publisher, peer, client] { #expect(try cli.run("init").status == 0) }
        let data = randomBytes(3 << 20, seed: 90)
        _ = try publisher.write(data, to: "m/model.safetensors")
        let dir = (try publisher.write(Array("{}".utf8), to: "m/config.json") as NSString).deletingLastPathComponent
        #expect(try publisher.run("keys", "generate", "acme").status == 0)
        let published = try publisher.run("publish", dir, "--name", "tiny", "--version", "1.0", "--json")
        #expect(published.status == 0, "\(published.stderr)")
        let release = try #require(
            (try JSONSerialization.jsonObject(with: published.stdout) as? [String: Any])?["release"] as? String)
        let limit = ["/bin/sh", "-c", "ulimit -n 1024 && exec \"$@\"", "sh"]
        let first = try NodeProcess(cli: publisher, wrapper: limit)
        defer { first.stop() }
        let second = try NodeProcess(cli: peer, extra: ["--peer", first.address], wrapper: limit)
        defer { second.stop() }
        for node in [first, second] {
            #expect(node.process.isRunning, "\(node.startupLog)")
            #expect(Self.uid(of: node.process.processIdentifier).map { $0 != 0 } == true, "the node runs as root")
            #expect(!node.startupLog.contains("warning"), "\(node.startupLog)")
        }
        // Gossip: the second node learns the release from the first.
        #expect(
            eventually(30) { (try? peer.run("audit", release, "--offline").status) == 0 },
            "the peer learned the release by gossip")
        // A fetch over an accepted connection (the connection the SO_DEBUG bug killed), verified byte for byte.
        let out = client.home + "-out.bin"
        let address = ContentHash.of(data).description
        let fetched = try client.runCommand(["fetch", address, "-o", out, "--peer", first.address])
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(FileManager.default.contents(atPath: out) == Data(data))
        // And the first node is still up afterwards.
        #expect(first.process.isRunning)
        for node in [second, first] {
            node.process.terminate()
            node.process.waitUntilExit()
            #expect(node.process.terminationReason == .exit && node.process.terminationStatus == 0)
        }
        #expect(try publisher.run("verify").status == 0)
    }

    /// The home is 0700 and every key 0600 even with a permissive umask and a home directory that someone else made
    /// 0755 first (`useradd --create-home`, systemd's StateDirectory=, a container volume).
    @Test func homeAndKeysArePrivateWhateverTheUmaskAndWhoeverMadeTheDirectory() throws {
        let cli = CLI(unprivileged: true)
        defer { cli.cleanUp() }
        // The directory exists already, world-readable, as a deployment makes it.
        runAs(cli, ["/bin/mkdir", "-m", "0755", cli.home])
        #expect(mode(cli.home) == 0o755)
        for arguments in [["init"], ["keys", "generate", "acme"]] {
            let umask000 = ["/bin/sh", "-c", "umask 000 && exec \"$@\"", "sh", CLI.binary]
            #expect(runAs(cli, umask000 + arguments + ["--home", cli.home]) == 0)
        }
        #expect(mode(cli.home) == 0o700)
        #expect(mode(cli.home + "/keys") == 0o700)
        #expect(mode(cli.home + "/keys/node.key") == 0o600)
        #expect(mode(cli.home + "/keys/publishers") == 0o700)
        #expect(mode(cli.home + "/keys/publishers/acme.pem") == 0o600)
        // Nothing in the home is writable by others, whatever the umask was.
        let walker = FileManager.default.enumerator(atPath: cli.home)
        while let relative = walker?.nextObject() as? String {
            #expect(mode(cli.home + "/" + relative) & 0o022 == 0, "\(relative) is writable by others")
        }
        // A node key someone made readable is refused, with the fix; `init` fixes it.
        runAs(cli, ["/bin/chmod", "0644", cli.home + "/keys/node.key"])
        let refused = try NodeProcess(cli: cli)
        refused.stop()
        #expect(refused.startupLog.contains("chmod 600"), "\(refused.startupLog)")
        #expect(try cli.run("init").status == 0)
        #expect(mode(cli.home + "/keys/node.key") == 0o600)
    }

    /// A home that belongs to another user, or a shared directory such as /tmp, is refused before anything is
    /// written, with who owns it and what to do.
    @Test func aHomeOfAnotherUserOrASharedDirectoryIsRefused() throws {
        let cli = CLI(unprivileged: true)
        defer { cli.cleanUp() }
        let shared = try CLI(home: "/tmp", launcher: cli.launcher).run("init")
        #expect(shared.status == 3 && shared.stderr.contains("shared with every user"), "\(shared.stderr)")
        // Another user's directory: root's own, seen by an unprivileged user (never /tmp: shared, refused above).
        let theirs = FileManager.default.temporaryDirectory.path + "/alexandria-theirs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: theirs, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: theirs) }
        let target = Self.isRoot ? theirs : "/usr/lib"
        let r = try CLI(home: target, launcher: cli.launcher).run("init")
        #expect(r.status == 3, "\(r.stderr)")
        #expect(r.stderr.contains("belongs to uid 0") && r.stderr.contains("chown -R"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: target + "/store"))
    }

    /// A home on a read-only file system (a read-only bind mount when the runner is root, else a directory without
    /// write permission, which stops everyone but root) fails at start with a clear error, not later.
    @Test func aReadOnlyHomeIsAClearError() throws {
        let cli = CLI(unprivileged: true)
        defer {
            runAs(cli, ["/bin/chmod", "0700", cli.home])
            cli.cleanUp()
        }
        #expect(try cli.run("init").status == 0)
        if Self.isRoot {
            let mount = [
                "/usr/bin/unshare", "-m", "/bin/sh", "-c", "mount --bind -o ro \"$0\" \"$0\" && exec \"$@\"", cli.home,
            ]
            let node = try NodeProcess(cli: CLI(home: cli.home, launcher: []), wrapper: mount + cli.launcher)
            node.stop()
            #expect(node.startupLog.contains("read-only file system"), "\(node.startupLog)")
        }
        runAs(cli, ["/bin/chmod", "0500", cli.home])
        let node = try NodeProcess(cli: cli)
        node.stop()
        #expect(node.process.terminationStatus == 3)
        #expect(node.startupLog.contains("not writable") && node.startupLog.contains(cli.home), "\(node.startupLog)")
    }

    /// Ports below 1024 need a capability a node should not have: the error says so and what to do.
    @Test(.enabled(if: UnprivilegedTests.privilegedPortBoundary > 1))
    func aPrivilegedPortIsAClearError() throws {
        let cli = CLI(unprivileged: true)
        defer { cli.cleanUp() }
        #expect(try cli.run("init").status == 0)
        let port = min(80, Self.privilegedPortBoundary - 1)
        let node = try NodeProcess(cli: cli, port: port)
        node.stop()
        #expect(node.process.terminationStatus == 3)
        #expect(node.startupLog.contains("cannot listen on 127.0.0.1:\(port)"), "\(node.startupLog)")
        #expect(node.startupLog.contains("CAP_NET_BIND_SERVICE") && node.startupLog.contains("1024"))
        #expect(!node.startupLog.contains("errno"), "no raw network library error")
    }

    /// A port in use: which address, and what to do.
    @Test func anAddressInUseIsAClearError() throws {
        let a = CLI(unprivileged: true)
        let b = CLI(unprivileged: true)
        defer { [a, b].forEach { $0.cleanUp() } }
        for cli in [a, b] { #expect(try cli.run("init").status == 0) }
        let first = try NodeProcess(cli: a)
        defer { first.stop() }
        let second = try NodeProcess(cli: b, port: first.port)
        second.stop()
        #expect(second.process.terminationStatus == 3)
        #expect(second.startupLog.contains("cannot listen on \(first.address)"), "\(second.startupLog)")
        #expect(second.startupLog.contains("already in use"), "\(second.startupLog)")
        #expect(!second.startupLog.contains("errno"))
    }

    /// The node states how many descriptors it needs, raises a low soft limit toward the hard one, and warns with
    /// the fix when even the hard limit is too low for `[node] inbound`.
    @Test func theNodeStatesItsDescriptorNeedRaisesTheSoftLimitAndWarnsWhenTooLow() throws {
        let cli = CLI(unprivileged: true)
        defer { cli.cleanUp() }
        #expect(try cli.run("init").status == 0)
        // A soft limit of 256 under a hard one of 4096: raised, and the need stated.
        let raised = try NodeProcess(
            cli: cli, wrapper: ["/bin/sh", "-c", "ulimit -Sn 256 && ulimit -Hn 4096 && exec \"$@\"", "sh"])
        let limits = try String(contentsOfFile: "/proc/\(raised.process.processIdentifier)/limits", encoding: .utf8)
        raised.stop()
        let line = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }.map(String.init) ?? ""
        let soft = Int(line.split(separator: " ", omittingEmptySubsequences: true)[3]) ?? 0
        #expect(soft > 256 && soft <= 4096, "\(line)")
        #expect(raised.startupLog.contains("file descriptors: need about"), "\(raised.startupLog)")
        #expect(raised.startupLog.contains("64 inbound"))
        #expect(!raised.startupLog.contains("warning"))
        // A hard limit of 100 cannot hold 64 inbound connections: warned, with what to change.
        let low = try NodeProcess(cli: cli, wrapper: ["/bin/sh", "-c", "ulimit -n 100 && exec \"$@\"", "sh"])
        #expect(low.process.isRunning, "the node still runs")
        low.stop()
        #expect(low.startupLog.contains("warning"), "\(low.startupLog)")
        #expect(low.startupLog.contains("too low for [node] inbound = 64"), "\(low.startupLog)")
        #expect(low.startupLog.contains("LimitNOFILE") && low.startupLog.contains("config.toml"))
    }

    /// The lowest port that needs no privilege (net.ipv4.ip_unprivileged_port_start; 0 in some containers).
    static let privilegedPortBoundary: Int = {
        let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_unprivileged_port_start", encoding: .utf8)
        return text.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 1024
    }()

    static func uid(of pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })
        else { return nil }
        return line.split(separator: "\t").dropFirst().first.flatMap { Int($0) }
    }
}

func mode(_ path: String) -> mode_t {
    var st = stat()
    return stat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
}

/// Runs a command as the home's user (root could do anything; the point is what that user can do).
@discardableResult
func runAs(_ cli: CLI, _ command: [String]) -> Int32 {
    let process = Process()
    let full = cli.launcher + command
    process.executableURL = URL(fileURLWithPath: full[0])
    process.arguments = Array(full.dropFirst())
    process.standardOutput = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return -1 }
    process.waitUntilExit()
    return process.terminationStatus
}

@Suite("Logs", .serialized, .offThePool)
struct LogTests {
    /// An unknown level or format is a usage error (exit 2) naming the valid values, not a silent fallback to info.
    @Test(arguments: [["--log-level", "loud"], ["--log-format", "xml"]])
    func unknownLogLevelsAndFormatsAreUsageErrors(arguments: [String]) throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try cli.run("init").status == 0)
        let r = try cli.runCommand(["node", "run", "--listen", "127.0.0.1:0"] + arguments)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains(arguments[1]), "\(r.stderr)")
        #expect(r.stderr.contains(arguments[0] == "--log-level" ? "warning" : "json"), "\(r.stderr)")
    }

    /// `--log-format json`: every line on stderr is one JSON object with time, level, label, message, and the call's
    /// metadata as an object.
    @Test func jsonLogsAreOneObjectPerLine() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try cli.run("init").status == 0)
        let node = try NodeProcess(cli: cli, extra: ["--log-format", "json", "--log-level", "debug"])
        node.stop()
        let lines = node.startupLog.split(separator: "\n")
        #expect(lines.count >= 2, "\(node.startupLog)")
        var sawListening = false
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object != nil, "not a JSON object: \(line)")
            guard let object else { continue }
            #expect(object["time"] is String && object["label"] is String && object["message"] is String)
            #expect(["trace", "debug", "info", "notice", "warning"].contains(object["level"] as? String ?? ""))
            if object["message"] as? String == "listening" {
                sawListening = true
                let metadata = object["metadata"] as? [String: Any]
                #expect(metadata?["listen.port"] as? String == String(node.port), "\(line)")
            }
        }
        #expect(sawListening, "\(node.startupLog)")
    }
}
