import AlexandriaCatalog
import AlexandriaCore
import AlexandriaHome
import AlexandriaManifest
import AlexandriaStore
import ArgumentParser
import Crypto
import Foundation

/// Opens the store and catalog of a home together.
func openRegistry(_ home: Home) throws -> Registry {
    Registry(store: try home.openStore(), catalog: try home.openCatalog())
}

/// Local key names, so `mykey/model@1.0` works on the node that holds `mykey`.
func localKeyIDs(_ home: Home) -> [String: PublisherID] {
    var out: [String: PublisherID] = [:]
    for k in (try? home.publisherKeys.list()) ?? [] { out[k.name] = PublisherID(hex: k.id) }
    return out
}

func resolve(_ text: String, home: Home, registry: Registry) throws -> Resolved {
    try registry.resolve(try parseReference(text), localKeys: localKeyIDs(home))
}

/// A reference typed on the command line; a malformed one is a usage error (exit 2), like a malformed hash.
func parseReference(_ text: String) throws -> Reference {
    do {
        return try Reference(parsing: text)
    } catch let error as CatalogError {
        throw CommandFailure(message: error.message, exitCode: 2)
    } catch let error as ManifestError {
        throw CommandFailure(message: "'\(text)': \(error.message)", exitCode: 2)
    }
}

struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish a model folder as a signed, permanent release in the publisher's log.",
        discussion: """
            Every file is ingested, a manifest (DSSE + in-toto) is signed, and a publish entry and a new checkpoint \
            are appended to the log. Publishing the same folder again as the same release does nothing; different \
            bytes under an existing release are refused.
            """)

    @OptionGroup var options: HomeOptions
    @Argument(help: "The model folder.") var directory: String
    @Option(help: "Release name (a-z 0-9 . _ -).") var name: String
    @Option(help: "Release version.") var version: String
    @Option(help: "Publisher key name (default: the only key in this home).") var key: String?
    @Option(help: "A parent release or manifest id (repeat with --relation for each).") var derivedFrom: [String] = []
    @Option(help: "finetune, quantization, adapter, merge, distillation or repackage.") var relation: [String] = []
    @Option(help: "License identifier, e.g. apache-2.0.") var license: String?
    @Option(help: "The model card's path in the folder (default: README.md if present).") var modelCard: String?
    @Option(help: "An OpenSSF Model Signing bundle for this folder to check and keep as an attestation.")
    var omsSignature: String?
    @Option(help: "The public key (PEM) that made --oms-signature.") var omsPublicKey: String?
    @Flag(help: "Publish with an imported key although this node has not synced its log.") var assumeLogCurrent = false
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        guard derivedFrom.count == relation.count else {
            throw ValidationError("give one --relation for each --derived-from")
        }
        for r in relation where LineageRelation(rawValue: r) == nil {
            throw ValidationError(
                "unknown relation '\(r)'; use \(LineageRelation.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (omsSignature == nil) == (omsPublicKey == nil) else {
            throw ValidationError("--oms-signature and --oms-public-key go together")
        }
    }

    func run() throws {
        let home = options.resolved
        let keys = home.publisherKeys
        let keyName =
            try key
            ?? {
                let all = try keys.list().filter { !$0.retired }
                guard all.count == 1 else {
                    throw CommandFailure(
                        message: all.isEmpty
                            ? "no publisher key; `alexandria keys generate NAME` first" : "several keys; pass --key",
                        exitCode: 2)
                }
                return all[0].name
            }()
        let signingKey = try keys.load(keyName)
        guard !keys.isRetired(keyName) else {
            throw CommandFailure(message: "\(keyName) is retired: its publisher's log was handed to another key")
        }
        let publisher = try keys.publisher(of: keyName)
        if keys.origin(keyName) == "imported" && !assumeLogCurrent {
            throw CommandFailure(
                message: "\(keyName) was imported: its log may have entries this node has not seen, and appending now "
                    + "could fork it. Sync the log from the network first with `alexandria sync` (asks this home's peers; "
                    + "--peer HOST:PORT adds one), or pass --assume-log-current if this node holds the whole log",
                exitCode: 2)
        }
        try ObjectStorage.checkWriter(home)
        let registry = try openRegistry(home)
        // On an s3 home the release's packs go to the bucket before publish returns, as an add's do.
        if try home.objectStore() != nil { try registry.store.sealOpenPacks() }
        var lineage: [Manifest.Lineage] = []
        for (parent, r) in zip(derivedFrom, relation) {
            let resolved = try resolve(parent, home: home, registry: registry)
            lineage.append(.init(manifest: resolved.manifest.id, relation: LineageRelation(rawValue: r)!))
        }
        let card = modelCard ?? (FileManager.default.fileExists(atPath: directory + "/README.md") ? "README.md" : nil)
        var attestation: JSONValue?
        if let omsSignature, let omsPublicKey {
            attestation = try checkOMS(bundle: omsSignature, publicKey: omsPublicKey)
        }
        var bar: ProgressBar?
        var current = ""
        let result = try registry.publish(
            directory: directory, name: name, version: version, key: signingKey, publisher: publisher, lineage: lineage,
            license: license,
            modelCard: card, attestation: attestation
        ) { path, done in
            if path != current {
                bar?.finish()
                current = path
                let size =
                    (try? FileManager.default.attributesOfItem(atPath: directory + "/" + path)[.size] as? UInt64) ?? 0
                bar = ProgressBar(label: path, total: size)
            }
            bar?.update(done)
        }
        bar?.finish()
        try ObjectStorage.afterWrite(home, registry.store)
        if assumeLogCurrent { try? keys.markSynced(keyName) }
        if json { return try Output.json(result) }
        if result.alreadyPublished {
            Output.line("already published: \(result.release) is \(result.manifestID); nothing changed")
        } else {
            Output.line("published \(result.release)")
            Output.line("  manifest   \(result.manifestID)")
            Output.line("  log entry  \(result.logIndex)")
            Output.line("  files      \(result.files), \(ByteSize.format(result.bytes))")
        }
    }

    /// Checks an OMS bundle against the folder and returns the attestation to keep.
    func checkOMS(bundle: String, publicKey: String) throws -> JSONValue {
        guard let bytes = try Home.readFile(bundle, limit: 16 << 20),
            let pem = try Home.readFile(publicKey, limit: 64 << 10)
        else { throw CommandFailure(message: "cannot read \(bundle) or \(publicKey)") }
        let key = try P256.Signing.PublicKey(pemRepresentation: String(decoding: pem, as: UTF8.self))
        let verified = try OMSBundle.verify(bundle: bytes, publicKey: key)
        let files = try Registry.releaseFiles(in: directory)
        let bundleName = URL(fileURLWithPath: bundle).standardizedFileURL.path
        for file in files where URL(fileURLWithPath: file.absolute).standardizedFileURL.path != bundleName {
            guard let digest = verified.resources[file.relative] else {
                throw CommandFailure(message: "the OMS bundle does not cover \(file.relative)")
            }
            guard try sha256(file.absolute) == digest else {
                throw CommandFailure(message: "\(file.relative) does not match the OMS bundle's digest")
            }
        }
        return .object([
            ("type", .string("openssf-model-signing")), ("signer", .string(verified.keyFingerprint.description)),
            ("bundleSHA256", .string(ContentHash.of(bytes).hex)),
            ("bundle", .string(Data(bytes).base64EncodedString())),
        ])
    }

    func sha256(_ path: String) throws -> ContentHash {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandFailure(message: "cannot read \(path)")
        }
        return data.withUnsafeBytes { SHA256Stream.hash($0) }
    }
}

struct Notices {
    static func announce(
        _ kind: LogEntry.Kind, ref: String, home: Home, reason: String?, sunset: String? = nil,
        successor: String? = nil,
        severity: LogEntry.Severity? = nil
    ) throws {
        let registry = try openRegistry(home)
        let resolved = try resolve(ref, home: home, registry: registry)
        guard let (_, key) = try home.publisherKeys.named(forID: resolved.manifest.manifest.publisher) else {
            throw CommandFailure(
                message: "this home has no key for publisher \(resolved.manifest.manifest.publisher.short)")
        }
        var successorText = successor
        if let successor {
            successorText = try resolve(successor, home: home, registry: registry).manifest.manifest.release.description
        }
        let entry = try registry.announce(
            kind, release: resolved, key: key, reason: reason, sunset: sunset, successor: successorText,
            severity: severity)
        Output.line("\(kind.rawValue) \(resolved.manifest.manifest.release): log entry \(entry.index)")
        if kind == .yank {
            Output.line("  the bytes stay; an exact fetch by hash or manifest id still works; `@latest` skips it")
        }
    }
}

struct Yank: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hide a release from @latest (a signed log entry; nothing is deleted).")
    @OptionGroup var options: HomeOptions
    @Argument var ref: String
    @Option(help: "Why (shown by fetch and audit).") var reason: String
    func run() throws { try Notices.announce(.yank, ref: ref, home: options.resolved, reason: reason) }
}

struct Unyank: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reverse a yank (a signed log entry).")
    @OptionGroup var options: HomeOptions
    @Argument var ref: String
    @Option(help: "Why.") var reason: String?
    func run() throws { try Notices.announce(.unyank, ref: ref, home: options.resolved, reason: reason) }
}

struct Deprecate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Announce the end of a release (a signed log entry).")
    @OptionGroup var options: HomeOptions
    @Argument var ref: String
    @Option(help: "Why.") var reason: String
    @Option(help: "Sunset date, YYYY-MM-DD.") var sunset: String?
    @Option(help: "The release that replaces it.") var successor: String?
    func validate() throws {
        if let sunset, !ISOTime.isValidDate(sunset) { throw ValidationError("--sunset takes YYYY-MM-DD") }
    }
    func run() throws {
        try Notices.announce(
            .deprecate, ref: ref, home: options.resolved, reason: reason, sunset: sunset, successor: successor)
    }
}

struct Advise: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish a security advisory for a release (a signed log entry).")
    @OptionGroup var options: HomeOptions
    @Argument var ref: String
    @Option(help: "low, medium, high or critical.") var severity: String
    @Option(help: "What is wrong and what to do.") var reason: String
    func validate() throws {
        if LogEntry.Severity(rawValue: severity) == nil {
            throw ValidationError("--severity is low, medium, high or critical")
        }
    }
    func run() throws {
        try Notices.announce(
            .advisory, ref: ref, home: options.resolved, reason: reason, severity: LogEntry.Severity(rawValue: severity)
        )
    }
}

struct ExportOMS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-oms",
        abstract: "Write an OpenSSF Model Signing bundle for a release (verify with `model_signing verify key`).")
    @OptionGroup var options: HomeOptions
    @Argument var ref: String
    @Option(name: .shortAndLong, help: "Bundle file to write.") var output: String

    func run() throws {
        let home = options.resolved
        let registry = try openRegistry(home)
        let resolved = try resolve(ref, home: home, registry: registry)
        guard let (_, key) = try home.publisherKeys.named(forID: resolved.manifest.manifest.publisher) else {
            throw CommandFailure(
                message: "the bundle is signed with the publisher's key, which this home does not hold")
        }
        let bundle = try OMSBundle.export(resolved.manifest, key: key)
        try Home.writeFileAtomically(output, bundle, mode: 0o644)
        Output.line("wrote \(output) for \(resolved.manifest.manifest.release)")
        Output.line("  verify: model_signing verify key DIR --signature \(output) --public_key PUB.pem")
    }
}
