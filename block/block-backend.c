/* block core: block-backend (being written) */
