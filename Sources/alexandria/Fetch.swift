import AlexandriaCatalog
import AlexandriaCore
import AlexandriaHome
import AlexandriaManifest
import ArgumentParser

struct Fetch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Materialise a file or a whole release, verified, written atomically.",
        discussion: """
            REF is a file's sha256 address (-o FILE), or a manifest id or publisher/name@version (-o DIR). \
            No path in a manifest can write outside DIR. This build fetches from the local store; fetching from \
            peers comes with the node daemon.
            """)

    @OptionGroup var options: HomeOptions
    @Argument var ref: String
    @Option(name: .shortAndLong, help: "Where to write (a file for a file address, a folder for a release).")
    var output: String

    func run() throws {
        let home = options.resolved
        let registry = try openRegistry(home)
        let reference = try Reference(parsing: ref)
        if case .manifest(let hash) = reference, try registry.catalog.manifest(id: hash) == nil,
            try registry.store.recipe(of: hash) != nil
        {
            let bytes = try registry.materialize(file: hash, to: output)
            Output.line("wrote \(output) (\(bytes) bytes, verified \(hash))")
            return
        }
        let resolved = try registry.resolve(reference, localKeys: localKeyIDs(home))
        for note in resolved.notes { Output.line("note: \(note)") }
        let manifest = resolved.manifest.manifest
        if let status = resolved.log.releases[manifest.release.local] {
            if let y = status.yanked {
                Output.warning("\(manifest.release) is YANKED (entry \(y.index)): \(y.reason ?? "")")
            }
            for n in status.notices where n.kind == .deprecate || n.kind == .advisory {
                Output.warning(
                    "\(manifest.release): \(n.kind.rawValue)\(n.severity.map { " (\($0.rawValue))" } ?? ""): "
                        + "\(n.reason ?? "")\(n.successor.map { "; successor \($0)" } ?? "")")
            }
        }
        if try !registry.catalog.equivocations(publisher: manifest.publisher).isEmpty {
            Output.warning("an overwrite attempt by this publisher was seen; `alexandria audit \(ref)` shows it")
        }
        let (files, bytes) = try registry.materialize(release: resolved.manifest, to: output)
        Output.line(
            "materialised \(manifest.release) (\(resolved.manifest.id)) into \(output): \(files) files, \(bytes) bytes written"
        )
    }
}
