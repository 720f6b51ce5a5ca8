/* block core: io (being written) */
