/* block core: reopen (being written) */
