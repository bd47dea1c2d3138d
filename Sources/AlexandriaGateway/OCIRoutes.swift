import AlexandriaCore
import AlexandriaManifest
import NIOHTTP1

/// The pull side of the OCI distribution spec, serving each release as a CNCF ModelPack artifact: `/v2/`,
/// `/v2/<publisher>/<name>/manifests/<tag|digest>`, `/blobs/<digest>` (with ranges), `/tags/list`.
///
/// The OCI manifest and config are derived from the signed Alexandria manifest alone, written in canonical JSON, so
/// every node serves the same bytes under the same digest (Protocol/gateway-v1.md, "OCI").
struct OCIRoutes: GatewayRoutes {
    let resolver: ReleaseResolver
    let pullThrough: PullThrough?

    static let manifestMediaType = "application/vnd.oci.image.manifest.v1+json"
    static let artifactType = "application/vnd.cncf.model.manifest.v1+json"
    static let configMediaType = "application/vnd.cncf.model.config.v1+json"

    func respond(to request: GatewayRequest) async throws -> GatewayResponse? {
        let s = request.target.segments
        guard s.first == "v2" else { return nil }
        do {
            if s.count == 1 || (s.count == 2 && s[1].isEmpty) {
                return GatewayResponse(
                    headers: ["Docker-Distribution-API-Version": "registry/2.0", "Content-Type": "application/json"],
                    body: .bytes(Array("{}".utf8)))
            }
            guard s.count == 5 else {
                throw OCIError(.notFound, "NAME_UNKNOWN", "not an OCI pull endpoint")
            }
            let (owner, name) = (s[1], s[2])
            guard let log = try resolver.log(owner: owner, name: name) else {
                throw OCIError(.notFound, "NAME_UNKNOWN", "no repository \(owner)/\(name) is known here")
            }
            let versions = resolver.versions(log, name: name)
            switch (s[3], s[4]) {
            case ("tags", "list"):
                return .json(
                    .object([
                        "name": .string("\(owner)/\(name)"),
                        "tags": .array((versions + ["latest"]).map { .string($0) }),
                    ]))
            case ("manifests", let reference):
                let artifact = try artifact(owner, name, reference: reference, versions: versions)
                var headers = HubRoutes.warnings(artifact.release)
                headers.add(name: "Content-Type", value: Self.manifestMediaType)
                headers.add(name: "Docker-Content-Digest", value: artifact.manifestDigest.description)
                headers.add(name: "ETag", value: "\"\(artifact.manifestDigest.description)\"")
                return GatewayResponse(headers: headers, body: .bytes(artifact.manifest))
            case ("blobs", let digest):
                guard digest.hasPrefix(ContentHash.prefix), let hash = ContentHash(hex64: String(digest.dropFirst(7)))
                else { throw OCIError(.badRequest, "DIGEST_INVALID", "blobs are named sha256:<64 hex>") }
                for version in versions.reversed() {
                    let a = try artifact(owner, name, reference: version, versions: versions)
                    if a.configDigest == hash {
                        return GatewayResponse(
                            headers: [
                                "Content-Type": Self.configMediaType, "Docker-Content-Digest": hash.description,
                                "ETag": "\"\(hash.description)\"",
                            ], body: .bytes(a.config))
                    }
                    if let file = a.release.manifest.manifest.files.first(where: { $0.sha256 == hash }) {
                        guard let recipe = try resolver.store.recipe(of: hash) else {
                            if let pullThrough, let job = await pullThrough.pull(file, of: a.release.manifest.id) {
                                return FileResponder.respond(
                                    pulling: job, to: request, headers: ["Docker-Content-Digest": hash.description])
                            }
                            throw OCIError(.serviceUnavailable, "UNAVAILABLE", "this node does not hold \(hash)")
                        }
                        return FileResponder.respond(
                            recipe, to: request, headers: ["Docker-Content-Digest": hash.description])
                    }
                }
                throw OCIError(.notFound, "BLOB_UNKNOWN", "\(owner)/\(name) has no blob \(digest)")
            default:
                throw OCIError(.notFound, "NAME_UNKNOWN", "not an OCI pull endpoint")
            }
        } catch let e as OCIError {
            return e.response
        }
    }

    /// A release as an OCI artifact: manifest and config bytes and their digests.
    struct Artifact {
        let release: GatewayRelease
        let manifest: [UInt8]
        let manifestDigest: ContentHash
        let config: [UInt8]
        let configDigest: ContentHash
    }

    func artifact(_ owner: String, _ name: String, reference: String, versions: [String]) throws -> Artifact {
        if reference.hasPrefix(ContentHash.prefix) {
            for version in versions {
                let a = try artifact(owner, name, reference: version, versions: versions)
                if a.manifestDigest.description == reference { return a }
            }
            throw OCIError(.notFound, "MANIFEST_UNKNOWN", "\(owner)/\(name) has no manifest \(reference)")
        }
        let release: GatewayRelease
        do { release = try resolver.resolve(owner: owner, name: name, revision: reference) } catch {
            throw OCIError(.notFound, "MANIFEST_UNKNOWN", "\(owner)/\(name) has no tag \(reference)")
        }
        return Self.artifact(release)
    }

    /// Derives the OCI manifest and ModelPack config from the signed manifest, deterministically.
    static func artifact(_ release: GatewayRelease) -> Artifact {
        let m = release.manifest.manifest
        let layers: [GatewayJSON] = m.files.map { f in
            .object([
                "mediaType": .string(layerMediaType(f.path)), "digest": .string(f.sha256.description),
                "size": .int(Int64(f.size)),
                "annotations": .object([
                    "org.cncf.model.filepath": .string(f.path), "org.opencontainers.image.title": .string(f.path),
                ]),
            ])
        }
        var descriptor: [String: GatewayJSON] = [
            "name": .string(m.name), "version": .string(m.version), "createdAt": .string(m.created),
            "authors": .array([.string(m.publisher.description)]),
            "revision": .string(release.manifest.id.description),
        ]
        if let license = m.license { descriptor["licenses"] = .array([.string(license)]) }
        let config = Array(
            GatewayJSON.object([
                "descriptor": .object(descriptor), "config": .object([:]),
                "modelfs": .object([
                    "type": "layers", "diffIds": .array(m.files.map { .string($0.sha256.description) }),
                ]),
            ]).text.utf8)
        let configDigest = ContentHash.of(config)
        let manifest = Array(
            GatewayJSON.object([
                "schemaVersion": .int(2), "mediaType": .string(manifestMediaType),
                "artifactType": .string(artifactType),
                "config": .object([
                    "mediaType": .string(configMediaType), "digest": .string(configDigest.description),
                    "size": .int(Int64(config.count)),
                ]),
                "layers": .array(layers),
                "annotations": .object([
                    "org.cncf.model.name": .string(m.name), "org.cncf.model.version": .string(m.version),
                    "org.cncf.model.created": .string(m.created),
                    "dev.alexandria.manifest": .string(release.manifest.id.description),
                    "dev.alexandria.publisher": .string(m.publisher.description),
                ]),
            ]).text.utf8)
        return Artifact(
            release: release, manifest: manifest, manifestDigest: ContentHash.of(manifest), config: config,
            configDigest: configDigest)
    }

    /// The ModelPack raw (unarchived) layer type for a file, by its name.
    static func layerMediaType(_ path: String) -> String {
        let base = path.split(separator: "/").last.map(String.init)?.lowercased() ?? path
        let ext = base.split(separator: ".").count > 1 ? String(base.split(separator: ".").last!) : ""
        if ["safetensors", "bin", "gguf", "pt", "pth", "onnx", "h5", "msgpack", "ckpt", "npz", "pb", "tflite"]
            .contains(ext)
        {
            return "application/vnd.cncf.model.weight.v1.raw"
        }
        if base.hasPrefix("readme") || base.hasPrefix("license") || ext == "md" {
            return "application/vnd.cncf.model.doc.v1.raw"
        }
        if ["py", "sh", "ipynb"].contains(ext) { return "application/vnd.cncf.model.code.v1.raw" }
        return "application/vnd.cncf.model.weight.config.v1.raw"
    }
}

/// An error in the OCI distribution spec's shape: `{"errors":[{"code":…,"message":…}]}`.
struct OCIError: Error {
    let status: HTTPResponseStatus
    let code: String
    let message: String

    init(_ status: HTTPResponseStatus, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    var response: GatewayResponse {
        .json(
            .object(["errors": .array([.object(["code": .string(code), "message": .string(message)])])]),
            status: status, headers: ["X-Error-Code": code, "X-Error-Message": GatewayError.headerSafe(message)])
    }
}
