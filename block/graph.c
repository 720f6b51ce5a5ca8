/* block core: graph (being written) */
