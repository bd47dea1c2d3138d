import AlexandriaCore
import Foundation
import Testing

/// A virtualenv with the real OpenSSF `model_signing` tool, installed once per test run.
enum ModelSigning {
    static let venv = FileManager.default.temporaryDirectory.path + "/alexandria-test-oms-venv"
    static let installed: Bool = {
        let bin = venv + "/bin/model_signing"
        if FileManager.default.isExecutableFile(atPath: bin) { return true }
        let script = "python3 -m venv '\(venv)' && '\(venv)/bin/pip' install -q model-signing pyopenssl"
        return sh(script) == 0 && FileManager.default.isExecutableFile(atPath: bin)
    }()

    @discardableResult
    static func sh(_ script: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try? p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}

@Suite("Publishing, notices, audit and OpenSSF Model Signing", .serialized, .offThePool)
struct PublishTests {
    func model(_ cli: CLI, _ name: String, extra: [String: [UInt8]] = [:]) throws -> String {
        var files: [String: [UInt8]] = [
            "model.safetensors": randomBytes(700_000, seed: 11), "config.json": Array("{\"hidden\": 64}".utf8),
            "README.md": Array("# tiny\n".utf8), "tokenizer/vocab.txt": Array("a\nb\n".utf8),
        ]
        for (k, v) in extra { files[k] = v }
        var dir = ""
        for (path, bytes) in files {
            let p = try cli.write(bytes, to: "\(name)/\(path)")
            dir = String(p.dropLast(path.count + 1))
        }
        return dir
    }

    @Test func publishRepublishRefuseYankLatestAuditFetch() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        #expect(try cli.run("keys", "generate", "acme").status == 0)
        let dir = try model(cli, "m1")
        let first = try cli.run("publish", dir, "--name", "tiny", "--version", "1.0", "--json")
        #expect(first.status == 0, "\(first.stderr)")
        let result = try JSONSerialization.jsonObject(with: first.stdout) as! [String: Any]
        let manifestID = result["manifestID"] as! String
        // Same folder, same release: nothing happens.
        let again = try cli.run("publish", dir, "--name", "tiny", "--version", "1.0")
        #expect(again.status == 0 && again.text.contains("already published"))
        // Other bytes under the same release: refused, and the release is unchanged.
        _ = try cli.write(Array("changed".utf8), to: "m1/config.json")
        let overwrite = try cli.run("publish", dir, "--name", "tiny", "--version", "1.0")
        #expect(overwrite.status == 3 && overwrite.stderr.contains("new version"))
        let v11 = try cli.run(
            "publish", dir, "--name", "tiny", "--version", "1.1", "--derived-from", "acme/tiny@1.0", "--relation",
            "finetune")
        #expect(v11.status == 0, "\(v11.stderr)")
        #expect(try cli.run("yank", "acme/tiny@1.1", "--reason", "regressed on evals").status == 0)
        #expect(try cli.run("deprecate", "acme/tiny@1.0", "--reason", "old", "--sunset", "2027-01-01").status == 0)
        // latest skips the yanked release and says why.
        let latest = try cli.run("audit", "acme/tiny@latest")
        #expect(latest.status == 0, "\(latest.text)\(latest.stderr)")
        #expect(latest.text.contains(manifestID) && latest.text.contains("regressed on evals"))
        #expect(latest.text.contains("deprecate"))
        // A yanked release is still fetchable exactly, with a warning.
        let fetched = try cli.run("fetch", "acme/tiny@1.1", "-o", cli.home + "-out11")
        #expect(fetched.status == 0 && fetched.stderr.contains("YANKED"))
        // The lineage audit walks to the root.
        let lineage = try cli.run("audit", "acme/tiny@1.1", "--json")
        let report = try JSONSerialization.jsonObject(with: lineage.stdout) as! [String: Any]
        let parents = report["lineage"] as! [[String: Any]]
        #expect(parents.count == 1 && (parents[0]["manifest"] as! String) == manifestID)
        // Damage a stored chunk: audit says content is corrupt (5); offline audit still passes.
        let pack = cli.home + "/store/packs/00000001.pack"
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: pack))
        try handle.seek(toOffset: 200)
        try handle.write(contentsOf: [0xde, 0xad])
        try handle.close()
        #expect(try cli.run("audit", manifestID).status == 5)
        #expect(try cli.run("audit", manifestID, "--offline").status == 0)
    }

    @Test func symlinksAreRefusedOutsideAHuggingFaceCacheEntry() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        _ = try cli.run("keys", "generate", "acme")
        let dir = try model(cli, "linked")
        let secret = try cli.write(Array("secret".utf8), to: "outside/secret.txt")
        try FileManager.default.createSymbolicLink(atPath: dir + "/leak.txt", withDestinationPath: secret)
        let r = try cli.run("publish", dir, "--name", "x", "--version", "1")
        #expect(r.status == 3 && r.stderr.contains("symbolic link"))
        // A Hugging Face cache snapshot publishes as its real files.
        let entry = cli.home + "-data/hub/models--org--tiny"
        let blob = try cli.write(randomBytes(50_000, seed: 3), to: "hub/models--org--tiny/blobs/abc123")
        let snapshot = entry + "/snapshots/0123abcd"
        try FileManager.default.createDirectory(atPath: snapshot, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: snapshot + "/model.bin", withDestinationPath: "../../blobs/abc123")
        let ok = try cli.run("publish", snapshot, "--name", "tiny", "--version", "1")
        #expect(ok.status == 0, "\(ok.stderr)")
        let out = cli.home + "-hfout"
        #expect(try cli.run("fetch", "acme/tiny@1", "-o", out).status == 0)
        #expect(FileManager.default.contents(atPath: out + "/model.bin") == FileManager.default.contents(atPath: blob))
        // A link out of the cache entry is refused even inside a snapshot.
        try FileManager.default.createSymbolicLink(atPath: snapshot + "/escape.txt", withDestinationPath: secret)
        #expect(try cli.run("publish", snapshot, "--name", "tiny", "--version", "2").status == 3)
    }

    @Test func keysExportImportAndForkProtection() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        _ = try cli.run("keys", "generate", "acme")
        let pass = try cli.write(Array("a long passphrase\n".utf8), to: "pass.txt")
        let exported = cli.home + "-data/acme.key.pem"
        #expect(try cli.run("keys", "export", "acme", "-o", exported, "--passphrase-file", pass).status == 0)
        #expect(String(decoding: FileManager.default.contents(atPath: exported)!, as: UTF8.self).contains("ENCRYPTED"))
        // OpenSSL itself reads it with the passphrase.
        #expect(ModelSigning.sh("openssl pkey -in '\(exported)' -passin file:'\(pass)' -noout") == 0)
        let other = CLI()
        defer { other.cleanUp() }
        _ = try other.run("init")
        let wrong = try cli.write(Array("nope\n".utf8), to: "wrong.txt")
        #expect(try other.run("keys", "import", exported, "--name", "acme", "--passphrase-file", wrong).status == 3)
        #expect(try other.run("keys", "import", exported, "--name", "acme", "--passphrase-file", pass).status == 0)
        let dir = try model(cli, "m")
        let refused = try other.run("publish", dir, "--name", "tiny", "--version", "1")
        #expect(refused.status == 2 && refused.stderr.contains("--assume-log-current"))
        #expect(try other.run("publish", dir, "--name", "tiny", "--version", "1", "--assume-log-current").status == 0)
        // A key file others can read is refused.
        chmod(other.home + "/keys/publishers/acme.pem", 0o644)
        let loose = try other.run("publish", dir, "--name", "tiny", "--version", "2")
        #expect(loose.status == 3 && loose.stderr.contains("chmod 600"))
    }

    @Test func keyRotationKeepsTheNameAndRetiresTheOldKey() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        _ = try cli.run("keys", "generate", "acme")
        let dir = try model(cli, "rot")
        #expect(try cli.run("publish", dir, "--name", "tiny", "--version", "1.0", "--key", "acme").status == 0)
        _ = try cli.run("keys", "generate", "acme2")
        #expect(try cli.run("keys", "rotate", "acme", "acme2").status == 0)
        let after = try cli.run("publish", dir, "--name", "tiny", "--version", "1.1", "--key", "acme2", "--json")
        #expect(after.status == 0, "\(after.stderr)")
        let release = (try JSONSerialization.jsonObject(with: after.stdout) as! [String: Any])["release"] as! String
        // Same publisher id as before the rotation.
        let keys = try cli.run("keys", "list", "--json")
        let list = try JSONSerialization.jsonObject(with: keys.stdout) as! [[String: Any]]
        #expect(Set(list.map { $0["id"] as! String }).count == 1)
        #expect(release.hasPrefix(list[0]["id"] as! String))
        let old = try cli.run("publish", dir, "--name", "tiny", "--version", "1.2", "--key", "acme")
        #expect(old.status == 3 && old.stderr.contains("retired"))
        #expect(try cli.run("audit", "acme2/tiny@1.1").status == 0)
        #expect(try cli.run("audit", "acme2/tiny@1.0").status == 0)
    }

    @Test func exportedBundleVerifiesWithTheRealModelSigningTool() throws {
        try #require(ModelSigning.installed, "could not install model-signing from PyPI into a virtualenv")
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        _ = try cli.run("keys", "generate", "acme")
        let dir = try model(cli, "oms")
        #expect(try cli.run("publish", dir, "--name", "tiny", "--version", "1.0").status == 0)
        let bundle = cli.home + "-data/tiny.sig"
        let pub = cli.home + "-data/acme.pub.pem"
        #expect(try cli.run("export-oms", "acme/tiny@1.0", "-o", bundle).status == 0)
        #expect(try cli.run("keys", "export", "acme", "--public", "-o", pub).status == 0)
        let out = cli.home + "-omsout"
        #expect(try cli.run("fetch", "acme/tiny@1.0", "-o", out).status == 0)
        let verify =
            "'\(ModelSigning.venv)/bin/model_signing' verify key '\(out)' --signature '\(bundle)' --public_key '\(pub)'"
        #expect(ModelSigning.sh(verify) == 0)
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: out + "/config.json"))
        #expect(ModelSigning.sh(verify) != 0)
    }

    @Test func aFolderSignedWithModelSigningPublishesWithItsSignatureKept() throws {
        try #require(ModelSigning.installed, "could not install model-signing from PyPI into a virtualenv")
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        _ = try cli.run("keys", "generate", "acme")
        let dir = try model(cli, "signed")
        let key = cli.home + "-data/oms.key"
        let pub = cli.home + "-data/oms.pub"
        let sig = cli.home + "-data/model.sig"
        #expect(
            ModelSigning.sh(
                "openssl ecparam -name prime256v1 -genkey -noout -out '\(key)' && openssl ec -in '\(key)' -pubout -out '\(pub)'"
            ) == 0)
        #expect(
            ModelSigning.sh(
                "'\(ModelSigning.venv)/bin/model_signing' sign key '\(dir)' --private_key '\(key)' --signature '\(sig)'"
            ) == 0)
        let r = try cli.run(
            "publish", dir, "--name", "tiny", "--version", "1", "--oms-signature", sig, "--oms-public-key", pub)
        #expect(r.status == 0, "\(r.stderr)")
        // A bundle that does not cover the folder is refused.
        _ = try cli.write(Array("new file".utf8), to: "signed/extra.txt")
        let bad = try cli.run(
            "publish", dir, "--name", "tiny", "--version", "2", "--oms-signature", sig, "--oms-public-key", pub)
        #expect(bad.status == 3 && bad.stderr.contains("does not cover"))
    }
}
