import AlexandriaCore
import Foundation
import Testing

/// Issue 13 §5.6: what a user is told about a deprecated release whose successor was yanked, and about a license
/// change.
@Suite("Notices and changes, said as they are")
struct NoticeMessagesTests {
    static func publish(_ cli: CLI, version: String, seed: UInt64, license: String? = nil) throws -> CLI.Result {
        _ = try cli.write(randomBytes(50_000, seed: seed), to: "m\(version)/model.safetensors")
        let dir =
            (try cli.write(Array("{\"v\": \"\(version)\"}".utf8), to: "m\(version)/config.json") as NSString)
            .deletingLastPathComponent
        return try cli.run(
            ["publish", dir, "--name", "tiny", "--version", version] + (license.map { ["--license", $0] } ?? []))
    }

    @Test func latestAtADeprecatedReleaseWhoseSuccessorIsYankedSaysSo() throws {
        let cli = CLI()
        defer {
            cli.cleanUp()
            try? FileManager.default.removeItem(atPath: cli.home + "-latest")
        }
        #expect(try cli.run("init").status == 0)
        #expect(try cli.run("keys", "generate", "acme").status == 0)
        #expect(try Self.publish(cli, version: "1.0", seed: 1).status == 0)
        #expect(try Self.publish(cli, version: "2.0", seed: 2).status == 0)
        let deprecated = try cli.run(
            "deprecate", "acme/tiny@1.0", "--successor", "acme/tiny@2.0", "--reason", "superseded")
        #expect(deprecated.status == 0, "\(deprecated.stderr)")
        #expect(try cli.run("yank", "acme/tiny@2.0", "--reason", "broken weights").status == 0)

        let fetched = try cli.run("fetch", "acme/tiny@latest", "-o", cli.home + "-latest")
        #expect(fetched.status == 0, "\(fetched.stderr)")
        let said = fetched.text + fetched.stderr
        #expect(said.contains("latest is tiny@1.0, not tiny@2.0: tiny@2.0 was yanked"), "\(said)")
        #expect(
            said.contains("tiny@1.0 is deprecated (entry 2) in favour of tiny@2.0, but tiny@2.0 was yanked"), "\(said)")
        #expect(said.contains("broken weights"), "\(said)")
        let audit = try cli.run("audit", "acme/tiny@latest")
        #expect(audit.text.contains("in favour of tiny@2.0, but tiny@2.0 was yanked"), "\(audit.text)")
    }

    @Test func aLicenseChangeIsReportedAsALicenseChange() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try cli.run("init").status == 0)
        #expect(try cli.run("keys", "generate", "acme").status == 0)
        #expect(try Self.publish(cli, version: "1.0", seed: 1, license: "mit").status == 0)
        let again = try Self.publish(cli, version: "1.0", seed: 1, license: "apache-2.0")
        #expect(again.status != 0)
        #expect(again.stderr.contains("a license change, from \"mit\" to \"apache-2.0\""), "\(again.stderr)")
        #expect(!again.stderr.contains("different content"), "\(again.stderr)")
        // Same files, same license: already published, not an error.
        #expect(try Self.publish(cli, version: "1.0", seed: 1, license: "mit").status == 0)
        // Other files: different content, said as such.
        let other = try Self.publish(cli, version: "1.0", seed: 9, license: "mit")
        #expect(other.stderr.contains("different content (files)"), "\(other.stderr)")
    }
}
