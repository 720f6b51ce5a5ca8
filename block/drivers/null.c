/* driver: null (being written) */
