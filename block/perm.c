/* block core: perm (being written) */
