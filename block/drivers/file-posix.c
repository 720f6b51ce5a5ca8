/* driver: file-posix (being written) */
