/* driver: raw-format (being written) */
