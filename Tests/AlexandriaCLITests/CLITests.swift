import AlexandriaCore
import Foundation
import Testing

@Suite("The alexandria command line", .serialized, .offThePool)
struct CLITests {
    @Test func initAddCatVerifyRoundTrip() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let r = try cli.run("init")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try cli.run("init").text.contains("already initialised"))
        let a = randomBytes(1_500_000, seed: 1)
        let b = Array("{\"model_type\": \"llama\"}".utf8)
        let folder = try cli.write(a, to: "model/weights.bin")
        _ = try cli.write(b, to: "model/config.json")
        let dir = (folder as NSString).deletingLastPathComponent
        let added = try cli.run("add", "--json", dir)
        #expect(added.status == 0, "\(added.stderr)")
        let report = try JSONSerialization.jsonObject(with: added.stdout) as! [String: Any]
        let files = report["files"] as! [[String: Any]]
        #expect(files.count == 2)
        let addresses = Set(files.map { $0["address"] as! String })
        #expect(addresses == [ContentHash.of(a).description, ContentHash.of(b).description])
        // Progress and chatter stay off a pipe.
        #expect(added.stderr.isEmpty)

        let cat = try cli.run("cat", ContentHash.of(a).description)
        #expect(cat.status == 0 && Array(cat.stdout) == a)
        // Bare hex (as sha256sum prints it) works too, and ranges are inclusive.
        let range = try cli.run("cat", "--range", "10-19", ContentHash.of(a).hex)
        #expect(Array(range.stdout) == Array(a[10...19]))
        let tail = try cli.run("cat", "--range", "1499990-", ContentHash.of(a).hex)
        #expect(Array(tail.stdout) == Array(a[1_499_990...]))

        let verify = try cli.run("verify", "--json")
        #expect(verify.status == 0)
        #expect((try JSONSerialization.jsonObject(with: verify.stdout) as! [String: Any])["ok"] as? Bool == true)
        let status = try cli.run("status", "--json")
        #expect((try JSONSerialization.jsonObject(with: status.stdout) as! [String: Any])["files"] as? Int == 2)
    }

    @Test func exitCodesFollowTheContract() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let notInit = try cli.run("status")
        #expect(notInit.status == 3 && notInit.stderr.contains("alexandria init"))
        _ = try cli.run("init")
        let data = randomBytes(1000, seed: 2)
        let path = try cli.write(data, to: "f.bin")
        _ = try cli.run("add", path)
        // Usage errors: 2.
        #expect(try cli.run("cat", "not-a-hash").status == 2)
        #expect(try cli.run("cat", "--range", "9-3", ContentHash.of(data).description).status == 2)
        #expect(try cli.run("frobnicate").status == 2)
        // Runtime failures: 3, with a message that says what to do.
        let unknown = try cli.run("cat", ContentHash.of([1]).description)
        #expect(unknown.status == 3 && unknown.stderr.contains("no file"))
        let past = try cli.run("cat", "--range", "5000-6000", ContentHash.of(data).description)
        #expect(past.status == 3 && past.stderr.contains("past the end"))
        let missing = try cli.run("add", "/nonexistent/../../etc/none")
        #expect(missing.status == 3 && missing.stderr.contains("no such file"))
        // A check that fails: 1.
        let pack = cli.home + "/store/packs/00000001.pack"
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: pack))
        try handle.seek(toOffset: 100)
        try handle.write(contentsOf: [0xff, 0xee])
        try handle.close()
        let verify = try cli.run("verify")
        #expect(verify.status == 1 && verify.text.contains("DAMAGED"))
        #expect(try cli.run("cat", ContentHash.of(data).description).stdout.isEmpty)
        #expect(try cli.run("--help").status == 0)
    }

    @Test func killDashNineDuringAddLeavesAStoreThatOpensVerifiesAndResumes() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        let data = randomBytes(64 << 20, seed: 3)
        let path = try cli.write(data, to: "big.bin")
        for delay in [0.05, 0.2, 0.5] {
            let running = try cli.start(["add", path])
            Thread.sleep(forTimeInterval: delay)
            kill(running.process.processIdentifier, SIGKILL)
            running.process.waitUntilExit()
            // A kill between the recipe record reaching the pack and the index commit leaves a whole file in the
            // packs that the index does not list: the packs alone cannot tell that from a lost index, so `verify`
            // says so and names `verify --repair` (Protocol/store-v1.md); after it, nothing is lost or wrong.
            let verify = try cli.run("verify")
            if verify.status != 0 {
                #expect(
                    verify.status == 1 && verify.text.contains("verify --repair"),
                    "after kill at \(delay)s: \(verify.text) \(verify.stderr)")
                #expect(try cli.run("verify", "--repair").status == 0)
                #expect(try cli.run("verify").status == 0, "after kill at \(delay)s and a repair")
            }
        }
        let added = try cli.run("add", path)
        #expect(added.status == 0, "\(added.stderr)")
        #expect(Array(try cli.run("cat", ContentHash.of(data).description).stdout) == data)
        #expect(try cli.run("verify").status == 0)
    }

    @Test func lockedIndexSaysSoWithinTheTimeout() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        try Data("[store]\nlock_timeout = 1\n".utf8).write(to: URL(fileURLWithPath: cli.home + "/config.toml"))
        let path = try cli.write(randomBytes(10_000, seed: 4), to: "f.bin")
        // Another process holds an exclusive SQLite lock on the index.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = [
            "python3", "-c",
            "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); "
                + "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(20)",
            cli.home + "/store/index.sqlite",
        ]
        let ready = Pipe()
        holder.standardOutput = ready
        try holder.run()
        defer { holder.terminate() }
        _ = ready.fileHandleForReading.availableData
        let started = Date()
        let r = try cli.run("add", path)
        #expect(r.status == 3)
        #expect(r.stderr.contains("locked"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 10)
        holder.terminate()
        holder.waitUntilExit()
        #expect(try cli.run("add", path).status == 0)
    }

    @Test func damagedIndexIsRepairedFromPacks() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        let data = randomBytes(2_000_000, seed: 5)
        _ = try cli.run("add", try cli.write(data, to: "f.bin"))
        for suffix in ["-wal", "-shm"] { unlink(cli.home + "/store/index.sqlite" + suffix) }
        try Data("this is not a database, it was overwritten".utf8).write(
            to: URL(fileURLWithPath: cli.home + "/store/index.sqlite"))
        let broken = try cli.run("cat", ContentHash.of(data).description)
        #expect(broken.status == 3 && broken.stderr.contains("verify --repair"), "\(broken.stderr)")
        let repaired = try cli.run("verify", "--repair")
        #expect(repaired.status == 0, "\(repaired.text)\(repaired.stderr)")
        #expect(Array(try cli.run("cat", ContentHash.of(data).description).stdout) == data)
    }

    @Test func badConfigIsRefusedWithTheLine() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        try Data("[store]\nbudgett = \"1 GiB\"\n".utf8).write(to: URL(fileURLWithPath: cli.home + "/config.toml"))
        let r = try cli.run("status")
        #expect(r.status == 3 && r.stderr.contains("budgett"))
        try Data("[store]\nbudget = 1 GiB\n".utf8).write(to: URL(fileURLWithPath: cli.home + "/config.toml"))
        #expect(try cli.run("status").stderr.contains("line 2"))
    }
}
