/* block core: options (being written) */
