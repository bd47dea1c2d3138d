import AlexandriaCore
import Crypto
import Foundation

/// How a release derives from another.
public enum LineageRelation: String, Sendable, CaseIterable, Codable {
    case finetune, quantization, adapter, merge, distillation, repackage
}

/// A release manifest: what `publisher/name@version` is, file by file, signed by its publisher.
///
/// Wire form: a DSSE envelope (payload type `application/vnd.in-toto+json`) around an in-toto Statement v1 whose
/// subjects are the files (relative path and sha256) and whose predicate (`https://alexandria.dev/release/v1`)
/// carries the name, version, publisher, log position, per-file size, Merkle root, chunk count and chunker,
/// lineage, license and model card. The payload is RFC 8785 canonical JSON; the manifest id is the SHA-256 of those
/// exact payload bytes. See Protocol/manifest-v1.md.
public struct Manifest: Sendable, Equatable {
    public struct File: Sendable, Equatable {
        public let path: String
        public let size: UInt64
        public let sha256: ContentHash
        public let merkleRoot: ContentHash
        public let chunks: Int
        public let chunker: ChunkerParameters

        public init(
            path: String, size: UInt64, sha256: ContentHash, merkleRoot: ContentHash, chunks: Int,
            chunker: ChunkerParameters
        ) {
            self.path = path
            self.size = size
            self.sha256 = sha256
            self.merkleRoot = merkleRoot
            self.chunks = chunks
            self.chunker = chunker
        }
    }

    public struct Lineage: Sendable, Equatable {
        public let manifest: ContentHash
        public let relation: LineageRelation

        public init(manifest: ContentHash, relation: LineageRelation) {
            self.manifest = manifest
            self.relation = relation
        }
    }

    public static let payloadType = "application/vnd.in-toto+json"
    public static let statementType = "https://in-toto.io/Statement/v1"
    public static let predicateType = "https://alexandria.dev/release/v1"

    /// Named limits.
    /// At most 1024 files, so a manifest (about 400 bytes a file, base64 in its envelope) always fits one wire
    /// frame alongside its log (Protocol/wire-v1.md, MANIFEST).
    public static let maxFiles = 1024
    public static let maxLineage = 64
    public static let maxTextBytes = 4096

    public let publisher: PublisherID
    public let name: String
    public let version: String
    /// The index of this release's publish entry in the publisher's log.
    public let logIndex: Int
    /// Sorted by path.
    public let files: [File]
    public let lineage: [Lineage]
    public let license: String?
    public let modelCard: String?
    /// RFC 3339 UTC, as the publisher's clock said.
    public let created: String

    public init(
        publisher: PublisherID, name: String, version: String, logIndex: Int, files: [File], lineage: [Lineage],
        license: String?, modelCard: String?, created: String
    ) throws(ManifestError) {
        self.publisher = publisher
        self.name = name
        self.version = version
        self.logIndex = logIndex
        self.files = files.sorted { $0.path < $1.path }
        self.lineage = lineage
        self.license = license
        self.modelCard = modelCard
        self.created = created
        try validate()
    }

    /// `publisher/name@version`.
    public var release: ReleaseName { ReleaseName(publisher: publisher, name: name, version: version) }

    func validate() throws(ManifestError) {
        try ReleaseName.validate(name: name, version: version)
        guard files.count <= Self.maxFiles else {
            throw ManifestError(
                .limitExceeded, "a manifest lists at most \(Self.maxFiles) files; this one \(files.count)")
        }
        guard lineage.count <= Self.maxLineage else {
            throw ManifestError(.limitExceeded, "a manifest names at most \(Self.maxLineage) parents")
        }
        guard logIndex >= 0, logIndex < 1 << 40 else {
            throw ManifestError(.malformed, "the log index is out of range")
        }
        try PathRules.validate(all: files.map(\.path))
        for file in files {
            guard file.size <= Limits.maxFileBytes else {
                throw ManifestError(.limitExceeded, "\(file.path) claims \(file.size) bytes, over the limit")
            }
            let minChunks =
                file.size == 0 ? 0 : Int((file.size + UInt64(file.chunker.maxSize) - 1) / UInt64(file.chunker.maxSize))
            guard file.chunks >= minChunks, file.chunks <= Limits.maxChunksPerFile,
                file.size > 0 || file.chunks == 0
            else { throw ManifestError(.malformed, "\(file.path) has an impossible chunk count \(file.chunks)") }
        }
        if let modelCard {
            guard files.contains(where: { $0.path == modelCard }) else {
                throw ManifestError(.malformed, "the model card \(modelCard) is not one of the release's files")
            }
        }
        for text in [license, created].compactMap({ $0 }) where text.utf8.count > Self.maxTextBytes {
            throw ManifestError(.limitExceeded, "a text field is longer than \(Self.maxTextBytes) bytes")
        }
        guard ISOTime.isValid(created) else {
            throw ManifestError(.malformed, "created is not RFC 3339 UTC: \(created)")
        }
    }

    /// The in-toto Statement, as JSON.
    public var statement: JSONValue {
        var predicate: [(String, JSONValue)] = [
            ("publisher", .string(publisher.description)),
            ("name", .string(name)),
            ("version", .string(version)),
            ("logIndex", .int(Int64(logIndex))),
            ("created", .string(created)),
            (
                "files",
                .array(
                    files.map { f in
                        .object([
                            ("path", .string(f.path)), ("size", .int(Int64(f.size))), ("sha256", .string(f.sha256.hex)),
                            ("merkleRoot", .string(f.merkleRoot.hex)), ("chunks", .int(Int64(f.chunks))),
                            ("chunker", .string(f.chunker.description)),
                        ])
                    })
            ),
            (
                "lineage",
                .array(
                    lineage.map {
                        .object([
                            ("manifest", .string($0.manifest.description)), ("relation", .string($0.relation.rawValue)),
                        ])
                    })
            ),
        ]
        if let license { predicate.append(("license", .string(license))) }
        if let modelCard { predicate.append(("modelCard", .string(modelCard))) }
        return .object([
            ("_type", .string(Self.statementType)),
            (
                "subject",
                .array(
                    files.map {
                        .object([("name", .string($0.path)), ("digest", .object([("sha256", .string($0.sha256.hex))]))])
                    })
            ),
            ("predicateType", .string(Self.predicateType)),
            ("predicate", .object(predicate)),
        ])
    }

    /// The canonical payload bytes that get signed.
    public var payload: [UInt8] { statement.canonical }

    /// Parses and checks a statement from the *signed payload bytes*. The bytes must already be canonical: a manifest
    /// has exactly one byte form, so it has exactly one id.
    public init(payload: [UInt8]) throws(ManifestError) {
        guard payload.count <= JSONLimits.maxBytes else {
            throw ManifestError(.limitExceeded, "a manifest is at most \(JSONLimits.maxBytes) bytes")
        }
        let value: JSONValue
        do { value = try JSONValue.parse(payload) } catch {
            if error.message.contains("too many") {
                throw ManifestError(.limitExceeded, "the manifest payload is over a limit: \(error)")
            }
            throw ManifestError(.malformed, "the manifest payload is not valid JSON: \(error)")
        }
        guard value.canonical == payload else {
            throw ManifestError(.malformed, "the manifest payload is not in RFC 8785 canonical form")
        }
        func field(_ v: JSONValue?, _ name: String) throws(ManifestError) -> JSONValue {
            guard let v else { throw ManifestError(.malformed, "the manifest has no \(name)") }
            return v
        }
        func string(_ v: JSONValue?, _ name: String) throws(ManifestError) -> String {
            guard let s = try field(v, name).stringValue else {
                throw ManifestError(.malformed, "\(name) is not a string")
            }
            return s
        }
        func int(_ v: JSONValue?, _ name: String) throws(ManifestError) -> Int64 {
            guard let i = try field(v, name).intValue, i >= 0 else {
                throw ManifestError(.malformed, "\(name) is not a non-negative integer")
            }
            return i
        }
        func hash(_ v: JSONValue?, _ name: String) throws(ManifestError) -> ContentHash {
            let text = try string(v, name)
            guard let h = ContentHash(canonical: "sha256:" + text) else {
                throw ManifestError(.malformed, "\(name) is not 64 lowercase hex digits")
            }
            return h
        }
        guard try string(value["_type"], "_type") == Self.statementType,
            try string(value["predicateType"], "predicateType") == Self.predicateType
        else { throw ManifestError(.malformed, "not an Alexandria release statement") }
        guard let top = value.objectValue, Set(top.map(\.0)) == ["_type", "subject", "predicateType", "predicate"]
        else { throw ManifestError(.malformed, "the statement has unexpected fields") }
        let predicate = try field(value["predicate"], "predicate")
        let allowed: Set<String> = [
            "publisher", "name", "version", "logIndex", "created", "files", "lineage", "license", "modelCard",
        ]
        guard let members = predicate.objectValue, Set(members.map(\.0)).isSubset(of: allowed) else {
            throw ManifestError(.malformed, "the predicate has unexpected fields")
        }
        guard let publisher = PublisherID(hex: try string(predicate["publisher"], "publisher")) else {
            throw ManifestError(.malformed, "the publisher is not a 64-hex key fingerprint")
        }
        guard let fileValues = try field(predicate["files"], "files").arrayValue else {
            throw ManifestError(.malformed, "files is not an array")
        }
        guard fileValues.count <= Self.maxFiles else {
            throw ManifestError(.limitExceeded, "a manifest lists at most \(Self.maxFiles) files")
        }
        var files: [File] = []
        for f in fileValues {
            guard let keys = f.objectValue?.map(\.0),
                Set(keys) == ["path", "size", "sha256", "merkleRoot", "chunks", "chunker"]
            else { throw ManifestError(.malformed, "a file entry has missing or unexpected fields") }
            guard let chunker = ChunkerParameters(parsing: try string(f["chunker"], "chunker")) else {
                throw ManifestError(.malformed, "unknown chunker \(f["chunker"]?.stringValue ?? "")")
            }
            files.append(
                File(
                    path: try string(f["path"], "path"), size: UInt64(try int(f["size"], "size")),
                    sha256: try hash(f["sha256"], "sha256"), merkleRoot: try hash(f["merkleRoot"], "merkleRoot"),
                    chunks: Int(try int(f["chunks"], "chunks")), chunker: chunker))
        }
        guard let lineageValues = try field(predicate["lineage"], "lineage").arrayValue else {
            throw ManifestError(.malformed, "lineage is not an array")
        }
        guard lineageValues.count <= Self.maxLineage else {
            throw ManifestError(.limitExceeded, "a manifest names at most \(Self.maxLineage) parents")
        }
        for optional in ["license", "modelCard"]
        where predicate[optional] != nil && predicate[optional]?.stringValue == nil {
            throw ManifestError(.malformed, "\(optional) is not a string")
        }
        var lineage: [Lineage] = []
        for l in lineageValues {
            guard let id = ContentHash(canonical: try string(l["manifest"], "lineage manifest")),
                let relation = LineageRelation(rawValue: try string(l["relation"], "relation")),
                l.objectValue?.count == 2
            else { throw ManifestError(.malformed, "a lineage entry is malformed") }
            lineage.append(Lineage(manifest: id, relation: relation))
        }
        try self.init(
            publisher: publisher, name: try string(predicate["name"], "name"),
            version: try string(predicate["version"], "version"),
            logIndex: Int(try int(predicate["logIndex"], "logIndex")),
            files: files, lineage: lineage, license: predicate["license"].flatMap(\.stringValue),
            modelCard: predicate["modelCard"].flatMap(\.stringValue),
            created: try string(predicate["created"], "created"))
        guard self.files.map(\.path) == files.map(\.path) else {
            throw ManifestError(.malformed, "files are not sorted by path")
        }
        // Subjects must be exactly the files, in the same order, with the same digests.
        guard let subjects = try field(value["subject"], "subject").arrayValue, subjects.count == files.count else {
            throw ManifestError(.malformed, "the subjects do not match the files")
        }
        for (s, f) in zip(subjects, files) {
            guard s["name"]?.stringValue == f.path, s["digest"]?["sha256"]?.stringValue == f.sha256.hex,
                s["digest"]?.objectValue?.count == 1, s.objectValue?.count == 2
            else { throw ManifestError(.malformed, "the subject for \(f.path) does not match its file entry") }
        }
    }
}

/// `publisher/name@version`, the name a release is known by forever.
public struct ReleaseName: Hashable, Sendable, CustomStringConvertible {
    public let publisher: PublisherID
    public let name: String
    public let version: String

    public init(publisher: PublisherID, name: String, version: String) {
        self.publisher = publisher
        self.name = name
        self.version = version
    }

    public var description: String { "\(publisher)/\(name)@\(version)" }
    /// `name@version`, within one publisher's log.
    public var local: String { "\(name)@\(version)" }

    /// Names: 1-128 of `a-z 0-9 . _ -`, starting with a letter or digit. Versions: 1-64 of `A-Z a-z 0-9 . _ + -`,
    /// starting with a letter or digit, and never `latest` (which resolves through the log).
    public static func validate(name: String, version: String) throws(ManifestError) {
        func ok(_ s: String, max: Int, extra: Set<UInt8>, upper: Bool) -> Bool {
            let bytes = Array(s.utf8)
            guard !bytes.isEmpty, bytes.count <= max else { return false }
            func alnum(_ b: UInt8) -> Bool {
                (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || (upper && b >= 0x41 && b <= 0x5a)
            }
            return alnum(bytes[0]) && bytes.allSatisfy { alnum($0) || extra.contains($0) }
        }
        guard ok(name, max: 128, extra: [0x2e, 0x5f, 0x2d], upper: false) else {
            throw ManifestError(.malformed, "the name \"\(name)\" must be 1-128 of a-z 0-9 . _ - (lowercase)")
        }
        guard ok(version, max: 64, extra: [0x2e, 0x5f, 0x2b, 0x2d], upper: true), version != "latest" else {
            throw ManifestError(
                .malformed, "the version \"\(version)\" must be 1-64 of A-Z a-z 0-9 . _ + - and not 'latest'")
        }
    }
}

/// RFC 3339 UTC timestamps with whole seconds: `2026-11-23T21:00:00Z`.
public enum ISOTime {
    public static func now() -> String { format(Date()) }

    public static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    public static func isValid(_ text: String) -> Bool {
        guard text.utf8.count == 20, text.hasSuffix("Z") else { return false }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text) != nil
    }

    /// `YYYY-MM-DD`.
    public static func isValidDate(_ text: String) -> Bool {
        guard text.utf8.count == 10 else { return false }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        return formatter.date(from: text) != nil
    }
}

/// A manifest together with its envelope, checked: the signature verifies over the payload bytes received,
/// the signer is the publisher the statement names, and the statement is valid.
public struct SignedManifest: Sendable, Equatable {
    public let envelope: DSSEEnvelope
    public let manifest: Manifest
    /// SHA-256 of the exact payload bytes.
    public let id: ContentHash

    /// Checks `envelope` against `publicKey` (which must be the key the statement's publisher id names).
    public init(envelope: DSSEEnvelope, publicKey: P256.Signing.PublicKey) throws(ManifestError) {
        guard envelope.payloadType == Manifest.payloadType else {
            throw ManifestError(.malformed, "the envelope's payload type is \(envelope.payloadType), not a manifest")
        }
        guard envelope.isSigned(by: publicKey) else {
            throw ManifestError(.badSignature, "the manifest's signature does not verify with the publisher's key")
        }
        let manifest = try Manifest(payload: envelope.payload)
        guard manifest.publisher == PublisherID(publicKey: publicKey) else {
            throw ManifestError(.unknownKey, "the manifest names publisher \(manifest.publisher.short), not the signer")
        }
        self.envelope = envelope
        self.manifest = manifest
        self.id = ContentHash.of(envelope.payload)
    }

    /// Signs a new manifest.
    /// `key` is the publisher's first key, or the key its log rotated to (the caller checked that against the log).
    public init(manifest: Manifest, key: PublisherKey) throws {
        let envelope = try DSSEEnvelope.sign(payloadType: Manifest.payloadType, payload: manifest.payload, key: key)
        self.envelope = envelope
        self.manifest = manifest
        self.id = ContentHash.of(envelope.payload)
    }
}

extension SignedManifest {
    /// Checks a manifest against its publisher's verified log, so a key the log rotated to signs too: the statement
    /// names the log's publisher, and the signature verifies with the key in force at the statement's log index.
    public init(envelope: DSSEEnvelope, log: PublisherLog) throws(ManifestError) {
        guard envelope.payloadType == Manifest.payloadType else {
            throw ManifestError(.malformed, "the envelope's payload type is \(envelope.payloadType), not a manifest")
        }
        let manifest = try Manifest(payload: envelope.payload)
        guard manifest.publisher == log.publisher else {
            throw ManifestError(.unknownKey, "the manifest names publisher \(manifest.publisher.short), not the log's")
        }
        guard envelope.isSigned(by: log.key(at: manifest.logIndex)) else {
            throw ManifestError(
                .badSignature, "the manifest's signature does not verify with the key in force at its log index")
        }
        self.envelope = envelope
        self.manifest = manifest
        self.id = ContentHash.of(envelope.payload)
    }
}
