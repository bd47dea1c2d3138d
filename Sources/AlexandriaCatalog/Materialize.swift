import AlexandriaCore
import AlexandriaManifest
import AlexandriaStore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension Registry {
    /// Writes a stored file to `path`: verified bytes go to a temporary file beside it, which is renamed into place
    /// only when the whole-file SHA-256 matches. Returns the bytes written.
    @discardableResult
    public func materialize(file address: ContentHash, to path: String) throws -> UInt64 {
        guard try store.recipe(of: address) != nil else {
            throw ManifestError(.notFound, "\(address) is not in the local store")
        }
        let temporary = path + ".alexandria-partial-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw CatalogError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var hasher = SHA256Stream()
        var written: UInt64 = 0
        do {
            try store.read(address) { bytes in
                hasher.update(bytes)
                var done = 0
                while done < bytes.count {
                    let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw CatalogError("cannot write \(temporary): \(String(cString: strerror(errno)))")
                    }
                    done += n
                }
                written += UInt64(bytes.count)
            }
            guard hasher.finalize() == address else { throw CatalogError("\(address) did not verify; nothing written") }
            guard fsync(fd) == 0 else { throw CatalogError("cannot sync \(temporary)") }
            close(fd)
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CatalogError("cannot move \(temporary) to \(path): \(String(cString: strerror(errno)))")
        }
        return written
    }

    /// Materialises a release as a folder at `directory`: every path checked again (no path can leave the folder,
    /// and no symbolic link inside it is followed), every file written atomically and verified. Files already there
    /// with the right content are kept.
    public func materialize(release signed: SignedManifest, to directory: String) throws -> (files: Int, bytes: UInt64)
    {
        let manifest = signed.manifest
        try PathRules.validate(all: manifest.files.map(\.path))
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw CatalogError("cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let root = URL(fileURLWithPath: directory).standardizedFileURL.resolvingSymlinksInPath().path
        var bytes: UInt64 = 0
        for file in manifest.files {
            var parent = root
            for component in Array(file.path.utf8).split(separator: 0x2F).dropLast() {
                parent += "/" + String(decoding: component, as: UTF8.self)
                var st = stat()
                if lstat(parent, &st) == 0 {
                    guard (st.st_mode & S_IFMT) == S_IFDIR else {
                        throw CatalogError(
                            "\(parent) exists and is not a folder (or is a link); refusing to write through it")
                    }
                } else if mkdir(parent, 0o755) != 0 {
                    throw CatalogError("cannot create \(parent): \(String(cString: strerror(errno)))")
                }
            }
            let target = root + "/" + file.path
            var st = stat()
            if lstat(target, &st) == 0 {
                guard (st.st_mode & S_IFMT) == S_IFREG else { throw CatalogError("\(target) exists and is not a file") }
                if UInt64(st.st_size) == file.size, (try? Self.sha256(ofFile: target)) == file.sha256 { continue }
            }
            bytes += try materialize(file: file.sha256, to: target)
        }
        return (manifest.files.count, bytes)
    }

    static func sha256(ofFile path: String) throws -> ContentHash {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CatalogError("cannot read \(path)") }
        defer { close(fd) }
        var hasher = SHA256Stream()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw CatalogError("cannot read \(path)") }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return hasher.finalize()
    }
}
