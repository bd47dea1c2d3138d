import AlexandriaCatalog
import AlexandriaHome
import AlexandriaManifest
import ArgumentParser
import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publisher signing keys (ECDSA P-256; private parts mode 0600).",
        subcommands: [Generate.self, List.self, Export.self, Import.self, Rotate.self, Compromised.self])

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hand a publisher's log to a new key: an entry signed by both keys (as TUF's root rotation is).",
            discussion: """
                Releases keep their names (the publisher id stays the first key's fingerprint); from now on only NEW \
                signs for the publisher, and OLD is retired. Create NEW first with `keys generate`.
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "The key that signs for the publisher now.") var old: String
        @Argument(help: "The key to hand the log to.") var new: String

        func run() throws {
            let home = options.resolved
            let keys = home.publisherKeys
            guard !keys.isRetired(old) else { throw CommandFailure(message: "\(old) is already retired") }
            let publisher = try keys.publisher(of: old)
            let registry = try openRegistry(home)
            let entry = try registry.rotate(publisher: publisher, from: try keys.load(old), to: try keys.load(new))
            try keys.assign(new, to: publisher)
            try keys.retire(old)
            Output.line(
                "publisher \(publisher.short)… now signs with \(new) (log entry \(entry.index)); \(old) is retired")
        }
    }

    struct Compromised: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report a leaked key: sign a notice that freezes the publisher's log at a size.",
            discussion: """
                Every node that holds the notice refuses log entries and manifests at index SIZE or later, and \
                `audit` fails (exit 10) on such a release it held before; releases before SIZE stand. Where several \
                notices exist the smallest size wins, so whoever holds the leaked key cannot lift a freeze. A node \
                running on this home gossips the notice. The publisher cannot publish under this id again.
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "The leaked key (any key that has signed for the publisher).") var name: String
        @Option(help: "Freeze the log at this many entries (default: the log's size on this node).") var atSize: Int?
        @Option(help: "Why, in a sentence.") var reason: String?

        func run() throws {
            let home = options.resolved
            let keys = home.publisherKeys
            let publisher = try keys.publisher(of: name)
            let registry = try openRegistry(home)
            let notice = try registry.reportCompromise(
                publisher: publisher, key: try keys.load(name), size: atSize, reason: reason)
            Output.line(
                "publisher \(publisher.short)…: key \(name) reported compromised; log frozen at size \(notice.size) "
                    + "(root \(notice.root))")
            Output.line("  entries from index \(notice.size) on are refused by every node that holds this notice")
        }
    }

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a publisher key.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "A local name for the key (a-z 0-9 - _).") var name: String

        func run() throws {
            let home = options.resolved
            let key = PublisherKey.generate()
            try home.publisherKeys.save(key, name: name, origin: "generated")
            try home.openCatalog().register(publisherKey: key.publicKey)
            Output.line("created publisher key \(name)")
            Output.line("  publisher id  \(key.id)")
            Output.line("  releases are named \(key.id.short)…/NAME@VERSION (or \(name)/NAME@VERSION on this node)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the publisher keys in this home.")
        @OptionGroup var options: HomeOptions
        @Flag(help: "Print the list as JSON.") var json = false

        func run() throws {
            let keys = try options.resolved.publisherKeys.list()
            if json { return try Output.json(keys) }
            if keys.isEmpty { Output.line("no publisher keys; `alexandria keys generate NAME` creates one") }
            for k in keys {
                let via = k.keyID == k.id ? "" : " key \(k.keyID.prefix(16))…"
                Output.line("\(k.name)  \(k.id)\(via)  (\(k.origin)\(k.retired ? ", retired" : ""))")
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Write a key as PEM: the private key encrypted under a passphrase, or with --public the public key.")
        @OptionGroup var options: HomeOptions
        @Argument var name: String
        @Flag(help: "Write only the public key (for verifiers such as model_signing).") var `public` = false
        @Option(name: .shortAndLong, help: "Output file.") var output: String
        @Option(help: "Read the passphrase from this file (first line) instead of asking.") var passphraseFile: String?

        func run() throws {
            let key = try options.resolved.publisherKeys.load(name)
            let text: String
            let mode: mode_t
            if `public` {
                text = key.publicKey.pemRepresentation + "\n"
                mode = 0o644
            } else {
                let pass = try Passphrase.read(file: passphraseFile, confirm: true)
                text = try key.encryptedPEM(passphrase: pass)
                mode = 0o600
            }
            try Home.writeFileAtomically(output, Array(text.utf8), mode: mode)
            Output.line("wrote \(`public` ? "public" : "encrypted private") key \(key.id.short)… to \(output)")
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import a private key exported with `keys export` (encrypted PEM) or a plain PKCS#8 PEM.")
        @OptionGroup var options: HomeOptions
        @Argument var file: String
        @Option(help: "Local name (default: the file name without .pem and .key, as `keys export` names it).")
        var name: String?

        /// `acme.key.pem` → `acme`: the file name without the extensions `keys export -o NAME.key.pem` gives it.
        static func defaultName(_ file: String) -> String {
            var base = URL(fileURLWithPath: file).lastPathComponent
            for suffix in [".pem", ".key", ".pub"] where base.hasSuffix(suffix) && base.count > suffix.count {
                base = String(base.dropLast(suffix.count))
            }
            return base
        }
        @Option(help: "Read the passphrase from this file instead of asking.") var passphraseFile: String?

        func run() throws {
            guard let bytes = try Home.readFile(file, limit: 64 << 10) else {
                throw CommandFailure(message: "no file \(file)")
            }
            let text = String(decoding: bytes, as: UTF8.self)
            let key: PublisherKey
            if text.contains("ENCRYPTED") {
                key = try PublisherKey(
                    encryptedPEM: text, passphrase: try Passphrase.read(file: passphraseFile, confirm: false))
            } else {
                key = try PublisherKey(pem: text)
            }
            let home = options.resolved
            let local = name ?? Self.defaultName(file)
            try home.publisherKeys.save(key, name: local, origin: "imported")
            try home.openCatalog().register(publisherKey: key.publicKey)
            Output.line("imported \(local) (publisher \(key.id))")
            Output.line(
                "  this key may already have a log elsewhere: `alexandria sync` fetches it from peers; until then "
                    + "publishing with it is refused (--assume-log-current overrides)")
        }
    }
}

enum Passphrase {
    static func read(file: String?, confirm: Bool) throws -> [UInt8] {
        if let file {
            guard let bytes = try Home.readFile(file, limit: 4096) else {
                throw CommandFailure(message: "no file \(file)")
            }
            let line = bytes.split(separator: 0x0a, omittingEmptySubsequences: false).first.map(Array.init) ?? []
            guard !line.isEmpty else { throw CommandFailure(message: "the passphrase file \(file) is empty") }
            return line
        }
        guard isatty(0) == 1 || access("/dev/tty", R_OK) == 0, let first = getpass("Passphrase: ") else {
            throw CommandFailure(message: "no terminal to ask for a passphrase; use --passphrase-file", exitCode: 2)
        }
        let pass = Array(String(cString: first).utf8)
        guard !pass.isEmpty else { throw CommandFailure(message: "the passphrase is empty") }
        if confirm {
            guard let again = getpass("Again: "), Array(String(cString: again).utf8) == pass else {
                throw CommandFailure(message: "the passphrases differ")
            }
        }
        return pass
    }
}
